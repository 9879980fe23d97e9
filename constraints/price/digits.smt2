; Digits (scikit-learn's load_digits: 8x8 images, pixels pixel_R_C in 0-16), multiclass: a box premise
; on two inputs -> class exclusion. Hold-out problem (added after the method was developed).
; In words: when the two centre pixels pixel_3_4 and pixel_4_4 are both bright (>= 14), the image is
; never a 0 (a 0 has a hole in the middle): some other digit's score beats the score of 0.
(declare-const pixel_3_4 Real)
(declare-const pixel_4_4 Real)
(declare-const |digit=0| Real)
(declare-const |digit=1| Real)
(declare-const |digit=2| Real)
(declare-const |digit=3| Real)
(declare-const |digit=4| Real)
(declare-const |digit=5| Real)
(declare-const |digit=6| Real)
(declare-const |digit=7| Real)
(declare-const |digit=8| Real)
(declare-const |digit=9| Real)
(assert (=> (and (>= pixel_3_4 14.0) (>= pixel_4_4 14.0))
            (or (> |digit=1| |digit=0|) (> |digit=2| |digit=0|) (> |digit=3| |digit=0|)
                (> |digit=4| |digit=0|) (> |digit=5| |digit=0|) (> |digit=6| |digit=0|)
                (> |digit=7| |digit=0|) (> |digit=8| |digit=0|) (> |digit=9| |digit=0|))))
