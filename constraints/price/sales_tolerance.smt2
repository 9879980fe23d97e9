; A shop's daily sales (own generator), regression: a tolerance band written with abs.
; In words: today's sales stay within 50 of yesterday's.
(declare-const sales_yesterday Real)
(declare-const sales_today Real)
(assert (<= (abs (- sales_today sales_yesterday)) 50.0))
