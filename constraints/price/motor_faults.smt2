; Motor condition (own generator), multiclass (normal, imbalance, bearing, overheat): two exclusions.
; In words: vibration of 7.1 mm/s or more (ISO 10816 zone D) is never 'normal';
; a motor below 60 C is never 'overheat'.
(declare-const vibration_mm_s Real)
(declare-const temperature_c Real)
(declare-const |fault=normal| Real)
(declare-const |fault=imbalance| Real)
(declare-const |fault=bearing| Real)
(declare-const |fault=overheat| Real)
(assert (=> (>= vibration_mm_s 7.1)
            (or (> |fault=imbalance| |fault=normal|) (> |fault=bearing| |fault=normal|) (> |fault=overheat| |fault=normal|))))
(assert (=> (< temperature_c 60.0)
            (or (> |fault=normal| |fault=overheat|) (> |fault=imbalance| |fault=overheat|) (> |fault=bearing| |fault=overheat|))))
