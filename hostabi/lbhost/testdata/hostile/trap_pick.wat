;; A balancing module whose pick traps (unreachable) when hash is 1, and
;; divides by zero when hash is 2; it returns endpoint 0 otherwise.
(module
  (memory 1)
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_pick") (param $hash i64) (param i64 i64 i32) (result i32)
    (if (i64.eq (local.get $hash) (i64.const 1)) (then unreachable))
    (if (i64.eq (local.get $hash) (i64.const 2))
      (then (return (i32.div_u (i32.const 1) (i32.wrap_i64 (local.get 1))))))
    (i32.const 0))
)
