;; A module that names functions by index in every place the sandbox's
;; rewrite must renumber: calls, ref.func in code, in a global's initialiser
;; and in element segments (active, passive and declarative, as indices and
;; as expressions), exports, the start function and the name section.
(module
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (type $t (func (result i32)))
  (table 8 funcref)
  (memory 1)
  (global $started (mut i32) (i32.const 0))
  (global $fref funcref (ref.func $three))
  (elem (i32.const 0) $one $two)
  (elem (table 0) (i32.const 4) funcref (ref.func $five) (ref.null func))
  (elem $passive func $four)
  (elem declare func $six)
  (func $one (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 2))
  (func $three (result i32) (i32.const 3))
  (func $four (result i32) (i32.const 4))
  (func $five (result i32) (i32.const 5))
  (func $six (result i32) (i32.const 6))
  (func $start (global.set $started (i32.const 7)))
  (start $start)
  (func (export "marker"))
  (func (export "indirect") (param i32) (result i32)
    (call_indirect (type $t) (local.get 0)))
  (func (export "direct") (result i32)
    (call $twice (call $two)))
  (func (export "init_passive")
    (table.init $passive (i32.const 2) (i32.const 0) (i32.const 1)))
  (func (export "set_from_global")
    (table.set 0 (i32.const 3) (global.get $fref))
    (table.set 0 (i32.const 6) (ref.func $six)))
  (func (export "started") (result i32) (global.get $started))
  ;; count counts to n in a loop without calls and returns n.
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "forever") (loop $l (br $l)))
)
