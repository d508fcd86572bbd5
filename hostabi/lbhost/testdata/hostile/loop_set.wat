;; A balancing module whose set_endpoints loops forever on a set of three
;; endpoints, and accepts any other.
(module
  (memory 1)
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32)
    (if (i32.eq (i32.load (local.get 1)) (i32.const 3))
      (then (loop $forever (br $forever))))
    (i32.const 0))
  (func (export "wproxy_lb_pick") (param i64 i64 i64 i32) (result i32) (i32.const 0))
)
