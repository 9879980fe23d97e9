; Recipe tags (sklearn make_multilabel_classification, word counts), multi-label: label implications.
; In words: a recipe tagged vegan is also tagged vegetarian and dairy-free.
(declare-const vegan Real)
(declare-const vegetarian Real)
(declare-const dairy_free Real)
(assert (=> (> vegan 0.0) (and (> vegetarian 0.0) (> dairy_free 0.0))))
