"""Files in and out: atomic writes, the one hardened ``.npy``/``.npz`` reader, images
(decoding, format sniffing, float TIFF/NPY output), PNG encoding, signals, and kernels
given as files or text.
"""
