;; A balancing module that grows its memory without bound in pick.
;; hash 1: grow by a page until memory.grow fails, then return the memory's
;;         size in pages (an index out of range, which the test reads back);
;; hash 2: grow for ever, ignoring failures;
;; otherwise endpoint 0.
(module
  (memory 1)
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_pick") (param $hash i64) (param i64 i64 i32) (result i32)
    (if (i64.eq (local.get $hash) (i64.const 1))
      (then
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (return (memory.size))))
    (if (i64.eq (local.get $hash) (i64.const 2))
      (then (loop $grow (drop (memory.grow (i32.const 1))) (br $grow))))
    (i32.const 0))
)
