; Diabetes (scikit-learn's load_diabetes, raw units), regression: a premise joined with or -> bound.
; In words: a patient with a BMI of 35 or more, or a blood pressure of 110 or more, is predicted a
; disease progression of at least 120.
(declare-const bmi Real)
(declare-const blood_pressure Real)
(declare-const progression Real)
(assert (=> (or (>= bmi 35.0) (>= blood_pressure 110.0)) (>= progression 120.0)))
