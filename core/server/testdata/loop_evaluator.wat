;; A health evaluator whose every evaluation loops for ever.
(module
  (memory 1)
  (func (export "wproxy_abi_health_v1"))
  (func (export "wproxy_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wproxy_health_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_health_evaluate") (param i32 i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
)
