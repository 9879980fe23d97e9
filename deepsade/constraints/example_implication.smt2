; Example: a classification rule (goes with usecases.toy, case TOY_BIN).
; In words: when both a and b exceed 0.7, the prediction must be "yes".
; Columns assumed: inputs a and b (raw units); label is the binary target's single score,
; positive = the positive class "yes".
; Try it: a CSV with columns a, b, c, label from usecases.toy.generate_binary().

(declare-const a Real)
(declare-const b Real)
(declare-const label Real)

(assert (=> (and (> a 0.7) (> b 0.7)) (> label 0.0)))
