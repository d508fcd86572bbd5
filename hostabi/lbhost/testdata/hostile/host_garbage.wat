;; A balancing module that calls every function of wproxy_lb_v1 with garbage
;; arguments in its pick and checks that each answers with its error code.
;; The pick returns endpoint 0 when all checks pass (having acquired it), or
;; -(1000 + n) for the first check n that failed. The set must have three
;; endpoints and the request the attribute method=GET.
(module
  (import "wproxy_lb_v1" "log" (func $log (param i32 i32 i32)))
  (import "wproxy_lb_v1" "endpoint_inflight" (func $inflight (param i32) (result i64)))
  (import "wproxy_lb_v1" "endpoint_stats" (func $stats (param i32 i32 i32 i32) (result i32)))
  (import "wproxy_lb_v1" "endpoint_latency" (func $latency (param i32) (result i64)))
  (import "wproxy_lb_v1" "endpoint_acquire" (func $acquire (param i32 i64) (result i32)))
  (import "wproxy_lb_v1" "pool_inflight" (func $pool_inflight (result i64)))
  (import "wproxy_lb_v1" "endpoint_load" (func $load (param i32) (result i64)))
  (import "wproxy_lb_v1" "endpoint_load_age" (func $load_age (param i32) (result i64)))
  (import "wproxy_lb_v1" "endpoint_load_set" (func $load_set (param i32 i64) (result i32)))
  (import "wproxy_lb_v1" "endpoint_load_claim" (func $load_claim (param i32 i64) (result i32)))
  (import "wproxy_lb_v1" "fetch_start" (func $fetch_start (param i32 i32) (result i64)))
  (import "wproxy_lb_v1" "fetch_result" (func $fetch_result (param i64 i32 i32) (result i64)))
  (import "wproxy_lb_v1" "timer_set" (func $timer_set (param i64 i64) (result i32)))
  (import "wproxy_lb_v1" "request_attr" (func $request_attr (param i32 i32 i32 i32) (result i64)))
  (memory 1)
  (data (i32.const 16) "method")
  (data (i32.const 32) "nope")
  (data (i32.const 64) "\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff")
  ;; endpoint indexes: -1, 1000, 0
  (data (i32.const 256) "\ff\ff\ff\ff\e8\03\00\00\00\00\00\00")
  (global $failed (mut i32) (i32.const 0))

  (func $eq32 (param $got i32) (param $want i32) (param $n i32)
    (if (i32.and (i32.ne (local.get $got) (local.get $want)) (i32.eqz (global.get $failed)))
      (then (global.set $failed (local.get $n)))))
  (func $eq64 (param $got i64) (param $want i64) (param $n i32)
    (if (i32.and (i64.ne (local.get $got) (local.get $want)) (i32.eqz (global.get $failed)))
      (then (global.set $failed (local.get $n)))))

  (func (export "wproxy_abi_lb_v1"))
  (func (export "wproxy_alloc") (param $size i32) (result i32) (i32.const 4096))
  (func (export "wproxy_lb_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "wproxy_lb_set_endpoints") (param i64 i32 i32) (result i32)
    ;; Outside a pick, acquiring and reading the request fail.
    (call $eq32 (call $acquire (i32.const 0) (i64.const 1000)) (i32.const -1) (i32.const 1))
    (call $eq64 (call $request_attr (i32.const 16) (i32.const 6) (i32.const 512) (i32.const 64)) (i64.const -1) (i32.const 2))
    (i32.const 0))
  (func (export "wproxy_on_timer") (param i64))

  (func (export "wproxy_lb_pick") (param i64 i64 i64 i32) (result i32)
    ;; log: levels out of range, messages outside memory or past its end.
    (call $log (i32.const 99) (i32.const 0xfffffff0) (i32.const 100))
    (call $log (i32.const -5) (i32.const 0) (i32.const -1))
    (call $log (i32.const 1) (i32.const 65530) (i32.const 100))

    ;; endpoint_stats
    (call $eq32 (call $stats (i32.const 0xfffffff0) (i32.const 1) (i32.const 512) (i32.const 32)) (i32.const -2) (i32.const 10))
    (call $eq32 (call $stats (i32.const 264) (i32.const 65) (i32.const 512) (i32.const 32)) (i32.const -2) (i32.const 11))
    (call $eq32 (call $stats (i32.const 264) (i32.const 1) (i32.const 512) (i32.const 0)) (i32.const -2) (i32.const 12))
    (call $eq32 (call $stats (i32.const 264) (i32.const 2) (i32.const 512) (i32.const 0x80000000)) (i32.const -2) (i32.const 13))
    (call $eq32 (call $stats (i32.const 264) (i32.const 3) (i32.const 512) (i32.const 0xffffffff)) (i32.const -2) (i32.const 14))
    (call $eq32 (call $stats (i32.const 264) (i32.const 1) (i32.const 0xfffffff0) (i32.const 32)) (i32.const -2) (i32.const 15))
    (call $eq32 (call $stats (i32.const 256) (i32.const 1) (i32.const 512) (i32.const 32)) (i32.const -2) (i32.const 16))
    (call $eq32 (call $stats (i32.const 260) (i32.const 1) (i32.const 512) (i32.const 32)) (i32.const -2) (i32.const 17))
    (call $eq32 (call $stats (i32.const 264) (i32.const 1) (i32.const 65519) (i32.const 32)) (i32.const -2) (i32.const 18))
    (call $eq32 (call $stats (i32.const 264) (i32.const 1) (i32.const 512) (i32.const 32)) (i32.const 32) (i32.const 19))
    (drop (call $stats (i32.const 0xfffffff0) (i32.const 0) (i32.const 0xfffffff0) (i32.const 32)))

    ;; figures by index
    (call $eq64 (call $inflight (i32.const -1)) (i64.const -2) (i32.const 20))
    (call $eq64 (call $inflight (i32.const 1000)) (i64.const -2) (i32.const 21))
    (call $eq64 (call $latency (i32.const 0x80000000)) (i64.const -2) (i32.const 22))
    (drop (call $pool_inflight))
    (call $eq64 (call $load (i32.const 99)) (i64.const -2) (i32.const 23))
    (call $eq64 (call $load_age (i32.const -1)) (i64.const -2) (i32.const 24))
    (call $eq32 (call $load_set (i32.const -1) (i64.const 5)) (i32.const 1) (i32.const 25))
    (call $eq32 (call $load_set (i32.const 0) (i64.const -1)) (i32.const 1) (i32.const 26))
    (call $eq32 (call $load_set (i32.const 0) (i64.const 100000001)) (i32.const 1) (i32.const 27))
    (call $eq32 (call $load_claim (i32.const -1) (i64.const 10)) (i32.const -1) (i32.const 28))
    (call $eq32 (call $load_claim (i32.const 0) (i64.const 0)) (i32.const -1) (i32.const 29))
    (call $eq32 (call $load_claim (i32.const 0) (i64.const -5)) (i32.const -1) (i32.const 30))
    (drop (call $load_claim (i32.const 0) (i64.const 0x7fffffffffffffff)))

    ;; fetches
    (call $eq64 (call $fetch_start (i32.const 0xfffffff0) (i32.const 100)) (i64.const -2) (i32.const 40))
    (call $eq64 (call $fetch_start (i32.const 64) (i32.const 0)) (i64.const -2) (i32.const 41))
    (call $eq64 (call $fetch_start (i32.const 64) (i32.const 32)) (i64.const -2) (i32.const 42))
    (call $eq64 (call $fetch_start (i32.const 0) (i32.const 0xffffffff)) (i64.const -2) (i32.const 43))
    (call $eq64 (call $fetch_result (i64.const -1) (i32.const 512) (i32.const 64)) (i64.const -6) (i32.const 44))
    (call $eq64 (call $fetch_result (i64.const 12345) (i32.const 0xfffffff0) (i32.const 100)) (i64.const -2) (i32.const 45))
    (call $eq64 (call $fetch_result (i64.const 1) (i32.const 0) (i32.const 0xffffffff)) (i64.const -2) (i32.const 46))

    ;; timers: a negative delay is invalid, an endless one is accepted
    (call $eq32 (call $timer_set (i64.const -1) (i64.const 7)) (i32.const 1) (i32.const 50))
    (call $eq32 (call $timer_set (i64.const 0x7fffffffffffffff) (i64.const 7)) (i32.const 0) (i32.const 51))

    ;; request attributes
    (call $eq64 (call $request_attr (i32.const 0xfffffff0) (i32.const 10) (i32.const 512) (i32.const 64)) (i64.const -2) (i32.const 60))
    (call $eq64 (call $request_attr (i32.const 16) (i32.const 0xffffffff) (i32.const 512) (i32.const 64)) (i64.const -2) (i32.const 61))
    (call $eq64 (call $request_attr (i32.const 16) (i32.const 300) (i32.const 512) (i32.const 64)) (i64.const -2) (i32.const 62))
    (call $eq64 (call $request_attr (i32.const 32) (i32.const 4) (i32.const 512) (i32.const 64)) (i64.const -1) (i32.const 63))
    (call $eq64 (call $request_attr (i32.const 16) (i32.const 6) (i32.const 0xfffffff0) (i32.const 100)) (i64.const -2) (i32.const 64))
    (call $eq64 (call $request_attr (i32.const 16) (i32.const 6) (i32.const 512) (i32.const 1)) (i64.const 3) (i32.const 65))
    (call $eq64 (call $request_attr (i32.const 16) (i32.const 6) (i32.const 512) (i32.const 64)) (i64.const 3) (i32.const 66))

    ;; endpoint_acquire: out of range, a negative limit, then twice
    (call $eq32 (call $acquire (i32.const -1) (i64.const 10)) (i32.const -1) (i32.const 70))
    (call $eq32 (call $acquire (i32.const 1000) (i64.const 10)) (i32.const -1) (i32.const 71))
    (call $eq32 (call $acquire (i32.const 0) (i64.const -1)) (i32.const 0) (i32.const 72))
    (call $eq32 (call $acquire (i32.const 0) (i64.const 1000)) (i32.const 1) (i32.const 73))
    (call $eq32 (call $acquire (i32.const 0) (i64.const 1000)) (i32.const -1) (i32.const 74))
    (call $eq32 (call $acquire (i32.const 1) (i64.const 1000)) (i32.const -1) (i32.const 75))

    (if (result i32) (global.get $failed)
      (then (i32.sub (i32.const -1000) (global.get $failed)))
      (else (i32.const 0))))
)
