;; A balancing module that defines no memory: refused at instantiation.
;; nomemory.wasm is built from this file with `wat2wasm nomemory.wat`.
(module
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_pick") (param i64 i64 i64 i32) (result i32) (i32.const 0))
)
