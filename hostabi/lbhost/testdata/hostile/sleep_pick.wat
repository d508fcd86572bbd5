;; A balancing module whose pick, when hash is 1, sleeps for an hour through
;; WASI's poll_oneoff, and returns endpoint 0 otherwise.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_pick") (param $hash i64) (param i64 i64 i32) (result i32)
    (if (i64.eq (local.get $hash) (i64.const 1))
      (then
        ;; One clock subscription at 32768: userdata, tag 0 (clock), clock
        ;; id 1 (monotonic), a timeout of 3600 s, precision, flags 0.
        (memory.fill (i32.const 32768) (i32.const 0) (i32.const 48))
        (i32.store (i32.const 32784) (i32.const 1))
        (i64.store (i32.const 32792) (i64.const 3600000000000))
        (drop (call $poll (i32.const 32768) (i32.const 33792) (i32.const 1) (i32.const 34816)))))
    (i32.const 0))
)
