"""The numbers Mandel, Eck & Bengio (ISMIR 2010) published, in one place.

Every table of the report prints ours beside these; ``reading`` compares them.
"""

# Table 1: (same_user, same_track, same_clip) -> (mean shared tags, stderr, pairs).
TABLE1 = {
    (1, 1, 1): (6.0370, 0.0290, 2566),
    (1, 1, 0): (2.3797, 0.0511, 690),
    (1, 0, 0): (1.2006, 0.0026, 227006),
    (0, 1, 1): (1.1137, 0.0142, 4838),
    (0, 1, 0): (1.0022, 0.0083, 13560),
    (0, 0, 0): (0.5240, 0.0004, 3702481),
}

# Table 2: the paper's data set of each of ours, then pattern over (User, Track, Item) ->
# (mean test balanced per-bit log pseudo-likelihood, stderr).
TABLE2_NAMES = {"simulated": "Mech. Turk", "majorminer": "MajorMiner",
                "lastfm-simulated": "Last.fm"}
TABLE2 = {
    "MajorMiner": {"+++": (-0.9179, 0.0088), "++-": (-0.9189, 0.0070),
                   "+--": (-0.9416, 0.0074), "---": (-1.0431, 0.0095),
                   "baseline": (-1.4029, 0.0024)},
    "Mech. Turk": {"++-": (-0.893, 0.015), "+--": (-0.904, 0.013), "+++": (-0.914, 0.012),
                   "---": (-1.039, 0.013), "baseline": (-1.300, 0.007)},
    "Last.fm": {"--+": (-0.5623, 0.0042), "---": (-0.7082, 0.0029),
                "baseline": (-1.1825, 0.0018)},
}

# Table 3: balanced accuracy (%) [trained][tested] = (mean, standard error), per the
# paper's data set of each of ours.
TABLE3_NAMES = {"simulated": "mturk", "majorminer": "majorminer"}
TABLE3 = {
    "mturk": {"raw": {"raw": (56.87, 0.52), "smoothed": (56.56, 0.36)},
              "smoothed": {"raw": (61.43, 0.51), "smoothed": (63.40, 0.35)}},
    "majorminer": {"raw": {"raw": (65.97, 0.49), "smoothed": (60.58, 0.35)},
                   "smoothed": {"raw": (66.67, 0.49), "smoothed": (63.09, 0.35)}},
}
