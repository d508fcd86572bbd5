;; A balancing module whose pick loops forever when hash is 1, and is round
;; robin otherwise.
(module
  (memory 1)
  (global $count (mut i32) (i32.const 0))
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32)
    (global.set $count (i32.load (local.get 1)))
    (i32.const 0))
  (func (export "wproxy_lb_pick") (param $hash i64) (param $seq i64) (param i64 i32) (result i32)
    (if (i64.eq (local.get $hash) (i64.const 1))
      (then (loop $forever (br $forever))))
    (i32.wrap_i64 (i64.rem_u (local.get $seq) (i64.extend_i32_u (global.get $count)))))
)
