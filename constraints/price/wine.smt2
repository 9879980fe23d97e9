; Wine (scikit-learn's load_wine), multiclass: premise -> class exclusion.
; In words: when proline exceeds 1000 mg/l, cultivar class_1 is never the top score
; (it is beaten by class_0 or by class_2).
(declare-const proline Real)
(declare-const |cultivar=class_0| Real)
(declare-const |cultivar=class_1| Real)
(declare-const |cultivar=class_2| Real)
(assert (=> (> proline 1000.0)
            (or (> |cultivar=class_0| |cultivar=class_1|) (> |cultivar=class_2| |cultivar=class_1|))))
