; Breast cancer (scikit-learn's load_breast_cancer), binary: premise -> class.
; In words: a tumour whose worst area exceeds 1500 (square units of the images) is always classified
; malignant. The target diagnosis is one score, positive = malignant.
(declare-const |worst area| Real)
(declare-const diagnosis Real)
(assert (=> (> |worst area| 1500.0) (> diagnosis 0.0)))
