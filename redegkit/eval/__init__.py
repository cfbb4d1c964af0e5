"""Measuring degradation fidelity: statistics (:mod:`.stats`) and ``redeg eval match``
(:mod:`.match`): which degradation source fits a folder of real photos."""
