;; A balancing module that asks for 64 pages (4 MiB) of memory at start.
(module
  (memory 64)
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_pick") (param i64 i64 i64 i32) (result i32) (i32.const 0))
)
