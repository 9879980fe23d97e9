; Portfolio shares (own generator), multi-output regression: an equality on outputs and a bound by an input.
; In words: the asset mix adds up to 100 percent exactly; no share is negative; the equity share is at most
; 110 minus the client's age (the adviser's rule of thumb).
(declare-const age Real)
(declare-const equity_pct Real)
(declare-const bonds_pct Real)
(declare-const cash_pct Real)
(assert (= (+ equity_pct bonds_pct cash_pct) 100.0))
(assert (and (>= equity_pct 0.0) (>= bonds_pct 0.0) (>= cash_pct 0.0)))
(assert (<= equity_pct (- 110.0 age)))
