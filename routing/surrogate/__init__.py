"""The certified surrogate tier (TRACER idea, with a provable gate).

A cheap local model trained on the teacher's (the AI judge's) labels answers for the teacher only
where an acceptor gate is certified, by Learn-Then-Test on held-out calibration rows, to agree with
the teacher at least at a target rate with probability >= 1 - delta.
"""

from routing.surrogate.acceptor import Acceptor, confidence_features
from routing.surrogate.audits import boundary_pairs, slice_audit, temporal_delta
from routing.surrogate.certify import Certificate, certify_fixed_sequence, threshold_sequence
from routing.surrogate.drift import DriftWatch
from routing.surrogate.gate import CertifiedSurrogate
from routing.surrogate.ood import KNNDistanceOOD
from routing.surrogate.zoo import CANDIDATES, FAST_CANDIDATES, select_surrogate

__all__ = [
    "Acceptor", "CANDIDATES", "Certificate", "CertifiedSurrogate", "DriftWatch", "FAST_CANDIDATES",
    "KNNDistanceOOD", "boundary_pairs", "certify_fixed_sequence", "confidence_features", "select_surrogate",
    "slice_audit", "temporal_delta", "threshold_sequence",
]
