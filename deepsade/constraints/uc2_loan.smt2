; UC2 - loan approval (binary classification), from the DeepSaDe paper.
; In words: an applicant with income below 5000 and no credit history must be denied.
; Names: input columns ApplicantIncome (raw units) and Credit_History (1.0 present, 0.0 absent);
; Loan_Status is the model's single score for the target column, positive = approved ("Y"),
; so "denied" is a negative score.
; Source: DeepSaDe (Goyal, Dumancic, Blockeel), use case 2; data README in ../shared/data.

(declare-const ApplicantIncome Real)
(declare-const Credit_History Real)
(declare-const Loan_Status Real)

(assert (=> (and (< ApplicantIncome 5000.0) (= Credit_History 0.0))
            (< Loan_Status 0.0)))
