;; A balancing module whose pick, when hash is 1, runs a recursion of 2^60
;; calls that never goes deeper than 60 frames and has no loop: only the
;; checks at function entries can stop it.
(module
  (memory 1)
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func $twice (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add
        (call $twice (i32.sub (local.get $n) (i32.const 1)))
        (call $twice (i32.sub (local.get $n) (i32.const 1)))))))
  (func (export "wproxy_lb_pick") (param $hash i64) (param i64 i64 i32) (result i32)
    (if (i64.eq (local.get $hash) (i64.const 1))
      (then (return (call $twice (i32.const 60)))))
    (i32.const 0))
)
