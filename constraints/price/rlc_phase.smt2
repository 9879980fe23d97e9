; RLC circuit phase angle (sklearn make_friedman3, in degrees), regression: output range everywhere.
; In words: a phase angle lies in [-90, 90] degrees.
(declare-const phase_deg Real)
(assert (and (>= phase_deg -90.0) (<= phase_deg 90.0)))
