; Pump condition monitoring (own generator), multi-label: three alarms, one score each (positive = raised).
; In words: a temperature of 100 C or more always raises the overheat alarm; whenever the overheat or
; the bearing-wear alarm is raised, maintenance is due.
(declare-const temperature_c Real)
(declare-const overheat Real)
(declare-const bearing_wear Real)
(declare-const maintenance_due Real)
(assert (=> (>= temperature_c 100.0) (> overheat 0.0)))
(assert (=> (or (> overheat 0.0) (> bearing_wear 0.0)) (> maintenance_due 0.0)))
