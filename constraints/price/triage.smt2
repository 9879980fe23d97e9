; Emergency-department triage (own generator), binary: premise -> class, with labels that contradict it.
; In words: a patient whose oxygen saturation is below 90% is always urgent. The records predate the
; policy, so about half of the hypoxic patients in them are labelled 'no'.
(declare-const spo2_pct Real)
(declare-const urgent Real)
(assert (=> (< spo2_pct 90.0) (> urgent 0.0)))
