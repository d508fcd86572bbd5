;; A balancing module whose timer callback loops forever. A pick with hash 1
;; sets a timer firing at once; every pick returns endpoint 0.
(module
  (import "wproxy_lb_v1" "timer_set" (func $timer_set (param i64 i64) (result i32)))
  (memory 1)
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_pick") (param $hash i64) (param i64 i64 i32) (result i32)
    (if (i64.eq (local.get $hash) (i64.const 1))
      (then (if (call $timer_set (i64.const 0) (i64.const 7))
        (then (return (i32.const -3))))))
    (i32.const 0))
  (func (export "wproxy_on_timer") (param i64)
    (loop $forever (br $forever)))
)
