; UC4 - digits in a strip of four images (multi-label classification), from the DeepSaDe paper.
; In words: the digits predicted present must sum to more than 10
; (sum over j of j * [score_j > 0] > 10, where digit j is predicted present when its score is positive).
; Names: one score per target column digit_0 .. digit_9 ("digit j appears in the strip").
; digit_0 is declared for completeness; its weight in the sum is 0.
; Source: DeepSaDe (Goyal, Dumancic, Blockeel), use case 4; data README in ../shared/data.

(declare-const digit_0 Real)
(declare-const digit_1 Real)
(declare-const digit_2 Real)
(declare-const digit_3 Real)
(declare-const digit_4 Real)
(declare-const digit_5 Real)
(declare-const digit_6 Real)
(declare-const digit_7 Real)
(declare-const digit_8 Real)
(declare-const digit_9 Real)

(define-fun present ((score Real)) Real (ite (> score 0.0) 1.0 0.0))

(assert (> (+ (* 1.0 (present digit_1)) (* 2.0 (present digit_2)) (* 3.0 (present digit_3))
              (* 4.0 (present digit_4)) (* 5.0 (present digit_5)) (* 6.0 (present digit_6))
              (* 7.0 (present digit_7)) (* 8.0 (present digit_8)) (* 9.0 (present digit_9)))
           10.0))
