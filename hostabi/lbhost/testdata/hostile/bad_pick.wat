;; A balancing module whose pick returns what hash says: 1 the endpoint
;; count (one past the last), 2 the largest i32, 3 -2, 4 the smallest i32,
;; 5 -1000000; otherwise endpoint 0.
(module
  (memory 1)
  (global $count (mut i32) (i32.const 0))
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32)
    (global.set $count (i32.load (local.get 1)))
    (i32.const 0))
  (func (export "wproxy_lb_pick") (param $hash i64) (param i64 i64 i32) (result i32)
    (block $other
      (block $5 (block $4 (block $3 (block $2 (block $1
        (br_table $other $1 $2 $3 $4 $5 $other (i32.wrap_i64 (local.get $hash))))
        (return (global.get $count)))
        (return (i32.const 0x7fffffff)))
        (return (i32.const -2)))
        (return (i32.const 0x80000000)))
        (return (i32.const -1000000)))
    (i32.const 0))
)
