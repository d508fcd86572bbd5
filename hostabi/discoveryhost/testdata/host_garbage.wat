;; A discovery adapter that calls every function of wproxy_discovery_v1
;; with garbage and checks each answers with its documented code. Its poll
;; returns 0 when all did, or 100 + n for the first check n that did not.
;; Its init fails (errno 1) when its configuration is not "{}".
(module
  (import "wproxy_discovery_v1" "http" (func $http (param i32 i32) (result i64)))
  (import "wproxy_discovery_v1" "http_result" (func $http_result (param i32 i32) (result i64)))
  (import "wproxy_discovery_v1" "set_endpoints" (func $set (param i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 4096) "\03\00\47\45\54\20\00\68\74\74\70\3a\2f\2f\31\30\2e\39\2e\39\2e\39\3a\32\33\37\39\2f\76\33\2f\6b\76\2f\72\61\6e\67\65\00\00\e8\03\00\00\00\00\00\00")
  (data (i32.const 8192) "\03\00\47\45\54\12\00\66\74\70\3a\2f\2f\31\32\37\2e\30\2e\30\2e\31\3a\31\2f\00\00\e8\03\00\00\00\00\00\00")
  (data (i32.const 12288) "\02\00\00\00\ff\ff\ff\ff")
  (func (export "wproxy_abi_discovery_v1"))
  (func (export "wproxy_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wproxy_discovery_init") (param $p i32) (param $n i32) (result i32)
    (if (i32.ne (local.get $n) (i32.const 2)) (then (return (i32.const 1))))
    (i32.const 0))
  (func (export "wproxy_discovery_poll") (result i32)
    ;; 1: nothing kept yet
    (if (i64.ne (call $http_result (i32.const 0) (i32.const 100)) (i64.const -6)) (then (return (i32.const 101))))
    ;; 2: a request outside memory
    (if (i64.ne (call $http (i32.const 65000) (i32.const 10000)) (i64.const -2)) (then (return (i32.const 102))))
    ;; 3: garbage bytes as a request
    (if (i64.ne (call $http (i32.const 12288) (i32.const 8)) (i64.const -2)) (then (return (i32.const 103))))
    ;; 4: a destination not among the endpoints
    (if (i64.ne (call $http (i32.const 4096) (i32.const 49)) (i64.const -4)) (then (return (i32.const 104))))
    ;; 5: a scheme other than http(s)
    (if (i64.ne (call $http (i32.const 8192) (i32.const 35)) (i64.const -2)) (then (return (i32.const 105))))
    ;; 6: a set that does not decode
    (if (i32.ne (call $set (i32.const 12288) (i32.const 8)) (i32.const 1)) (then (return (i32.const 106))))
    ;; 7: a set outside memory
    (if (i32.ne (call $set (i32.const 65530) (i32.const 100)) (i32.const 1)) (then (return (i32.const 107))))
    (i32.const 0))
)
