"""Regenerate the sample signals in this folder: ``python sample_signals/make_samples.py``.

- ``sensors.csv``: 4 s at 100 Hz; a ``time`` column (carried through untouched by
  ``dilcli signal``) and two channels: a noisy chirp (0.5 to 6 Hz) and noisy steps.
- ``chirp.wav``: 0.25 s at 8 kHz, 16-bit stereo; left a chirp (100 to 1500 Hz), right a
  square wave of 40 Hz, both at half full scale.

Deterministic (fixed seed), so the files only change when this script does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile

HERE = Path(__file__).resolve().parent


def chirp(t, f0, f1, duration):
    """A linear chirp: frequency f0 at t=0 rising to f1 at t=duration."""
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration) * t**2))


def sensors(rng, rate=100, duration=4.0):
    t = np.arange(round(rate * duration)) / rate
    wave = chirp(t, 0.5, 6.0, duration) + rng.normal(0, 0.08, t.size)
    levels = np.select([t < 0.8, t < 1.6, t < 2.4, t < 3.2], [0.0, 1.0, -0.5, 0.75], 0.0)
    steps = levels + rng.normal(0, 0.05, t.size)
    lines = ["time,chirp,steps"]
    lines += [f"{a:.2f},{b:.4f},{c:.4f}" for a, b, c in zip(t, wave, steps, strict=True)]
    (HERE / "sensors.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def audio(rate=8000, duration=0.25):
    t = np.arange(round(rate * duration)) / rate
    left = 0.5 * chirp(t, 100.0, 1500.0, duration)
    right = 0.5 * np.sign(np.sin(2 * np.pi * 40.0 * t + 0.1))
    samples = np.rint(np.stack([left, right], axis=1) * 32767).astype(np.int16)
    wavfile.write(HERE / "chirp.wav", rate, samples)


if __name__ == "__main__":
    generator = np.random.default_rng(2015)
    sensors(generator)
    audio()
