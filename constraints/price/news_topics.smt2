; News articles (sklearn make_multilabel_classification, allow_unlabeled=False), multi-label: five topics,
; one score each (positive = the article is filed under the topic).
; In words: every article is filed under at least one topic.
(declare-const politics Real)
(declare-const sports Real)
(declare-const science Real)
(declare-const business Real)
(declare-const culture Real)
(assert (or (> politics 0.0) (> sports 0.0) (> science 0.0) (> business 0.0) (> culture 0.0)))
