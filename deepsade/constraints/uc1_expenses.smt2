; UC1 - household expenses (multi-target regression), from the DeepSaDe paper.
; In words: the five predicted expenses together must not exceed the household income, and the
; going-out expense must be at most 5% of the household income.
; Names: the five expense outputs (targets) and the input column |Total Household Income|,
; all in the data's raw units (as in uc1_expenses.csv).
; Source: DeepSaDe (Goyal, Dumancic, Blockeel), use case 1; data README in ../shared/data.

(declare-const |Total Household Income| Real)
(declare-const All_Food_Expenses Real)
(declare-const Going_Out_Expenses Real)
(declare-const Shopping_Expenses Real)
(declare-const Necessary_Expenses Real)
(declare-const Miscellaneous_Expenses Real)

(define-fun total_expenses () Real
  (+ All_Food_Expenses Going_Out_Expenses Shopping_Expenses Necessary_Expenses Miscellaneous_Expenses))

(assert (<= total_expenses |Total Household Income|))
(assert (<= Going_Out_Expenses (* 0.05 |Total Household Income|)))
