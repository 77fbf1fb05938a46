"""What people look at: responses mapped to pixels, montages, receptive-field pictures,
signal plots and every table printer. Writes through :mod:`dilcli.io`.
"""


def montage(panels, **options):
    """The montage of labelled panels; see :func:`dilcli.render.panels.montage`."""
    from dilcli.render.panels import montage as draw

    return draw(panels, **options)
