; Iris (scikit-learn's load_iris), multiclass: two class exclusions on one input.
; In words: a flower with petals of 4 cm or longer is never setosa; one with petals of 2.5 cm or
; shorter is never virginica ("never X" = some other class scores higher than X).
(declare-const petal_length_cm Real)
(declare-const |species=setosa| Real)
(declare-const |species=versicolor| Real)
(declare-const |species=virginica| Real)
(assert (=> (>= petal_length_cm 4.0)
            (or (> |species=versicolor| |species=setosa|) (> |species=virginica| |species=setosa|))))
(assert (=> (<= petal_length_cm 2.5)
            (or (> |species=setosa| |species=virginica|) (> |species=versicolor| |species=virginica|))))
