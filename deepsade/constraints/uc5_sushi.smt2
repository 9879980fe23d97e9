; UC5 - sushi preferences (multi-label classification), from the DeepSaDe paper.
; In words: the predicted 4x4 matrix is a coherent ordering of sushi 4, 6, 9 and 10: exactly one
; positive score in each row (each item gets one place) and in each column (each place gets one item).
; Names: one score per target column out_<item>_<place>, item in 4, 6, 9, 10 and place 1..4
; (1 = best among those four).
; Source: DeepSaDe (Goyal, Dumancic, Blockeel), use case 5; data README in ../shared/data.

(declare-const out_4_1 Real)
(declare-const out_4_2 Real)
(declare-const out_4_3 Real)
(declare-const out_4_4 Real)
(declare-const out_6_1 Real)
(declare-const out_6_2 Real)
(declare-const out_6_3 Real)
(declare-const out_6_4 Real)
(declare-const out_9_1 Real)
(declare-const out_9_2 Real)
(declare-const out_9_3 Real)
(declare-const out_9_4 Real)
(declare-const out_10_1 Real)
(declare-const out_10_2 Real)
(declare-const out_10_3 Real)
(declare-const out_10_4 Real)

(define-fun positive ((score Real)) Real (ite (> score 0.0) 1.0 0.0))

; each item has exactly one place
(assert (= (+ (positive out_4_1) (positive out_4_2) (positive out_4_3) (positive out_4_4)) 1.0))
(assert (= (+ (positive out_6_1) (positive out_6_2) (positive out_6_3) (positive out_6_4)) 1.0))
(assert (= (+ (positive out_9_1) (positive out_9_2) (positive out_9_3) (positive out_9_4)) 1.0))
(assert (= (+ (positive out_10_1) (positive out_10_2) (positive out_10_3) (positive out_10_4)) 1.0))
; each place has exactly one item
(assert (= (+ (positive out_4_1) (positive out_6_1) (positive out_9_1) (positive out_10_1)) 1.0))
(assert (= (+ (positive out_4_2) (positive out_6_2) (positive out_9_2) (positive out_10_2)) 1.0))
(assert (= (+ (positive out_4_3) (positive out_6_3) (positive out_9_3) (positive out_10_3)) 1.0))
(assert (= (+ (positive out_4_4) (positive out_6_4) (positive out_9_4) (positive out_10_4)) 1.0))
