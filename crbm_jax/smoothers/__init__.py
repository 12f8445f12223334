"""Smoothers: maps from a data set's observations to [clips, tags] affinities, the
criterion that scores them (``criterion``) and the held-out observations it scores them
on (``count_split``). See docs/smoothing.md."""
