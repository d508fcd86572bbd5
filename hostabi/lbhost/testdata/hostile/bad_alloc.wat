;; A balancing module whose allocator returns garbage.
;; - For the configuration, by its length: 1 byte: 0; 2 bytes: 0xfffffff0,
;;   beyond memory; 3 bytes: 65535, the last byte of memory. Otherwise 1024.
;; - Once initialised, by the configuration's first byte: '0': 0; '1':
;;   0xfffffff0; '2': 65535; '3': 65532, where the set's count fits but not
;;   the rest. Otherwise 1024.
(module
  (memory 1)
  (global $mode (mut i32) (i32.const -1))
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32)
    (local $m i32)
    (local.set $m (global.get $mode))
    (if (i32.eq (local.get $m) (i32.const -1))
      (then (local.set $m (i32.sub (local.get $size) (i32.const 1)))))
    (if (i32.eqz (local.get $m)) (then (return (i32.const 0))))
    (if (i32.eq (local.get $m) (i32.const 1)) (then (return (i32.const 0xfffffff0))))
    (if (i32.eq (local.get $m) (i32.const 2)) (then (return (i32.const 65535))))
    (if (i32.eq (local.get $m) (i32.const 3)) (then (return (i32.const 65532))))
    (i32.const 1024))
  (func (export "wproxy_lb_init") (param $ptr i32) (param $len i32) (result i32)
    (global.set $mode (i32.sub (i32.load8_u (local.get $ptr)) (i32.const 48)))
    (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_pick") (param i64 i64 i64 i32) (result i32) (i32.const 0))
)
