; UC3 - music genre (multiclass classification), from the DeepSaDe paper.
; In words: a song by the Beatles must be classified as rock or pop.
; Names: input column Beatles (1 for a Beatles song, else 0); one score per class of the target
; column genre, named |genre=<class>|; the predicted class is the one with the highest score.
; "rock or pop wins" is written as: every other genre is beaten by rock or by pop.
; Source: DeepSaDe (Goyal, Dumancic, Blockeel), use case 3; data README in ../shared/data.

(declare-const Beatles Real)
(declare-const |genre=rock| Real)
(declare-const |genre=pop| Real)
(declare-const |genre=jazz| Real)
(declare-const |genre=classical| Real)
(declare-const |genre=hiphop| Real)

(assert (=> (= Beatles 1.0)
            (and (or (> |genre=rock| |genre=jazz|) (> |genre=pop| |genre=jazz|))
                 (or (> |genre=rock| |genre=classical|) (> |genre=pop| |genre=classical|))
                 (or (> |genre=rock| |genre=hiphop|) (> |genre=pop| |genre=hiphop|)))))
