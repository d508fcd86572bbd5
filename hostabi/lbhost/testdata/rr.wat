;; The module of ABI.md's example: plain round robin in WebAssembly text.
;; rr.wasm is built from this file with `wat2wasm rr.wat`.
(module
  (import "wproxy_lb_v1" "log" (func $log (param i32 i32 i32)))
  (memory 1)                       ;; 64 KiB: the host writes buffers at 1024
  (global $count (mut i32) (i32.const 0))
  (data (i32.const 16) "ready")
  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32)
    ;; one buffer at 1024; refuse what does not fit in the page
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 64512))
      (then (i32.const 0)) (else (i32.const 1024))))
  (func (export "wproxy_lb_init") (param $ptr i32) (param $len i32) (result i32)
    (call $log (i32.const 1) (i32.const 16) (i32.const 5))
    (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param $version i64) (param $ptr i32) (param $len i32) (result i32)
    ;; the set starts with its endpoint count, a little-endian u32
    (if (i32.lt_u (local.get $len) (i32.const 4)) (then (return (i32.const 1))))
    (global.set $count (i32.load (local.get $ptr)))
    (i32.const 0))
  (func (export "wproxy_lb_pick") (param $hash i64) (param $seq i64) (param $random i64) (param $flags i32) (result i32)
    (if (i32.eqz (global.get $count)) (then (return (i32.const -1))))
    (i32.wrap_i64 (i64.rem_u (local.get $seq) (i64.extend_i32_u (global.get $count)))))
)
