package wasmhost

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The sandbox makes every call into a module interruptible at almost no cost
// to the call: before compiling a module, the host rewrites it so that each
// loop iteration, and each entry into a function that calls others, spends
// one unit of fuel from a global the sandbox adds, and when the fuel is
// spent calls the host function wproxy_sandbox.yield, which refills it.
// Without loops and calls nothing runs long, so the module enters the host
// at least every FuelPerYield steps. There the host stops a call that ran
// past its budget (Instance.Interrupt) by trapping, and the Go scheduler
// gets its chance: compiled guest code cannot be preempted, so a module that
// only checked a flag would keep its thread, and with every thread looping,
// no watchdog, no other goroutine and no garbage collection could run.
//
// The added import takes the first function index after the module's own
// imports, so the rewrite renumbers every later function wherever an index
// names one: calls, ref.func, exports, the start function, element
// segments, global initialisers and the name section. No code of the module
// can name the fuel global (a module that names it is refused), and the
// rewrite refuses imports from the sandbox's module.
//
// The rewrite also takes the module's start function (which runs inside
// instantiation, where nothing could stop it) out of the start section and
// exports it, so that the host calls it like any other function, under a
// budget.
const (
	// fuelExport names the fuel global the sandbox adds.
	fuelExport = "wproxy.sandbox.fuel"
	// startExport names the module's start function, when it has one.
	startExport = "wproxy.sandbox.start"
	// SandboxModule and yieldName name the host function the sandbox
	// imports.
	SandboxModule = "wproxy_sandbox"
	yieldName     = "yield"
	// FuelPerYield is the number of loop iterations and function entries
	// between two calls of yield.
	FuelPerYield = 1 << 14
)

// Section ids of the WebAssembly binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank orders the sections as the binary format requires.
func sectionRank(id byte) int {
	switch id {
	case secType, secImport, secFunction, secTable, secMemory:
		return int(id)
	case secTag:
		return 6
	case secGlobal, secExport, secStart, secElement:
		return int(id) + 1
	case secDataCount:
		return 11
	case secCode, secData:
		return int(id) + 2
	}
	return -1
}

var errTruncated = errors.New("truncated")

// reader decodes the WebAssembly binary format.
type reader struct {
	b   []byte
	off int
}

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, errTruncated
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > 0xffffffff {
				return 0, errors.New("integer too large")
			}
			return uint32(v), nil
		}
	}
	return 0, errors.New("integer representation too long")
}

// skipLEB skips a LEB128 of at most maxBytes bytes, signed or not.
func (r *reader) skipLEB(maxBytes int) error {
	for range maxBytes {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("integer representation too long")
}

// name reads a name (a length-prefixed byte string).
func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(uint64(n))
	return string(b), err
}

func appendU32(dst []byte, v uint32) []byte { return binary.AppendUvarint(dst, uint64(v)) }

func appendSection(dst []byte, id byte, content []byte) []byte {
	dst = append(dst, id)
	dst = appendU32(dst, uint32(len(content)))
	return append(dst, content...)
}

// section is one section of a module, undecoded.
type section struct {
	id      byte
	content []byte
}

// instrumented is the result of instrument.
type instrumented struct {
	wasm     []byte
	hasStart bool // the module had a start function, now exported as startExport
}

// instrument rewrites a module for the sandbox, as described above. It
// decodes only what it must and leaves validation to the compiler, but
// refuses what it cannot rewrite safely: instructions it does not know, code
// that names the fuel global, exports and imports that clash with the
// sandbox's.
func instrument(wasm []byte) (*instrumented, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("no WebAssembly magic number")
	}
	if binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("binary format version %d, want 1", binary.LittleEndian.Uint32(wasm[4:8]))
	}
	r := &reader{b: wasm, off: 8}
	var (
		secs          []section
		globalCount   uint32 // imported and defined globals
		typeCount     uint32
		importedFuncs uint32
		start         = int64(-1)
		lastRank      = 0
		exportedNames []string
		has           = map[byte]bool{}
	)
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section %d: size: %w", id, err)
		}
		content, err := r.bytes(uint64(size))
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		if id != secCustom {
			rank := sectionRank(id)
			if rank < 0 {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if rank <= lastRank {
				return nil, fmt.Errorf("section %d out of order or repeated", id)
			}
			lastRank = rank
			has[id] = true
		}
		sr := &reader{b: content}
		if err := plausibleCount(id, content, len(wasm)); err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		switch id {
		case secType:
			if typeCount, err = sr.u32(); err != nil {
				return nil, fmt.Errorf("type section: %w", err)
			}
		case secImport:
			funcs, globals, err := countImports(sr)
			if err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
			globalCount += globals
			importedFuncs = funcs
		case secGlobal:
			n, err := sr.u32()
			if err != nil {
				return nil, fmt.Errorf("global section: %w", err)
			}
			globalCount += n
		case secExport:
			if exportedNames, err = exportNames(sr); err != nil {
				return nil, fmt.Errorf("export section: %w", err)
			}
		case secStart:
			f, err := sr.u32()
			if err != nil || !sr.done() {
				return nil, errors.New("malformed start section")
			}
			start = int64(f)
		}
		secs = append(secs, section{id, content})
	}
	for _, n := range exportedNames {
		if strings.HasPrefix(n, "wproxy.sandbox.") {
			return nil, fmt.Errorf("exports %q: names starting with wproxy.sandbox. are the host's", n)
		}
	}
	if globalCount == 0xffffffff || typeCount == 0xffffffff || importedFuncs == 0xffffffff {
		return nil, errors.New("too many globals, types or imports")
	}
	rw := &renumber{imported: importedFuncs}
	fuel := globalCount // the index of the fuel global
	yieldType := typeCount
	if start >= 0 {
		start = int64(rw.fn(uint32(start)))
	}

	out := make([]byte, 0, len(wasm)+len(wasm)/16+128)
	out = append(out, wasm[:8]...)
	done := map[byte]bool{}
	// emitMissing adds, before a section of rank next, the sections the
	// sandbox needs that the module lacks.
	emitMissing := func(next int) {
		for _, id := range []byte{secType, secImport, secGlobal, secExport} {
			if has[id] || done[id] || sectionRank(id) >= next {
				continue
			}
			var c []byte
			switch id {
			case secType:
				c = append(appendU32(nil, 1), yieldSig...)
			case secImport:
				c = appendYieldImport(appendU32(nil, 1), yieldType)
			case secGlobal:
				c = append(appendU32(nil, 1), fuelGlobal...)
			case secExport:
				c = appendSandboxExports(nil, 0, fuel, start)
			}
			out = appendSection(out, id, c)
			done[id] = true
		}
	}
	for _, s := range secs {
		if s.id != secCustom {
			emitMissing(sectionRank(s.id))
		}
		sr := &reader{b: s.content}
		var c []byte
		var err error
		switch s.id {
		case secCustom:
			n, nerr := sr.name()
			switch {
			case nerr == nil && strings.HasPrefix(n, ".debug_"):
				continue // DWARF: its code offsets no longer hold
			case nerr == nil && n == "name":
				c, err = rw.nameSection(s.content, sr.off)
				if err != nil {
					continue // names are for people: drop what cannot be renumbered
				}
			default:
				c = s.content
			}
		case secType:
			n, _ := sr.u32()
			c = append(appendU32(nil, n+1), s.content[sr.off:]...)
			c = append(c, yieldSig...)
		case secImport:
			n, _ := sr.u32()
			c = append(appendU32(nil, n+1), s.content[sr.off:]...)
			c = appendYieldImport(c, yieldType)
		case secGlobal:
			if c, err = rw.globals(sr); err != nil {
				return nil, fmt.Errorf("global section: %w", err)
			}
			c = append(c, fuelGlobal...)
		case secExport:
			if c, err = rw.exports(sr, fuel, start); err != nil {
				return nil, fmt.Errorf("export section: %w", err)
			}
		case secStart:
			continue // exported instead; the host calls it after instantiation
		case secElement:
			if c, err = rw.elements(sr); err != nil {
				return nil, fmt.Errorf("element section: %w", err)
			}
		case secCode:
			if c, err = instrumentCode(s.content, fuel, importedFuncs, rw); err != nil {
				return nil, fmt.Errorf("code section: %w", err)
			}
		default:
			c = s.content
		}
		out = appendSection(out, s.id, c)
		done[s.id] = true
	}
	emitMissing(1 << 30)
	return &instrumented{wasm: out, hasStart: start >= 0}, nil
}

// plausibleCount refuses a section whose vector claims more entries than
// it has bytes (every entry takes one at least): a decoder that sized its
// tables by the claim would ask for gigabytes, from a module of a few bytes.
func plausibleCount(id byte, content []byte, moduleSize int) error {
	if id == secCustom || id == secStart {
		return nil
	}
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil {
		return err
	}
	if id == secDataCount {
		if uint64(n) > uint64(moduleSize) {
			return fmt.Errorf("data count %d exceeds the module's %d bytes", n, moduleSize)
		}
		return nil
	}
	if uint64(n) > uint64(len(content)-r.off) {
		return fmt.Errorf("%d entries claimed in %d bytes", n, len(content)-r.off)
	}
	return nil
}

// yieldSig is the type of the yield function: () -> ().
var yieldSig = []byte{0x60, 0x00, 0x00}

// fuelGlobal is the definition of the fuel global: (mut i32) (i32.const 0),
// so that the first check calls yield, which fills it.
var fuelGlobal = []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}

func appendYieldImport(dst []byte, typeIdx uint32) []byte {
	dst = appendU32(dst, uint32(len(SandboxModule)))
	dst = append(dst, SandboxModule...)
	dst = appendU32(dst, uint32(len(yieldName)))
	dst = append(dst, yieldName...)
	dst = append(dst, 0x00) // function
	return appendU32(dst, typeIdx)
}

// appendSandboxExports appends the sandbox's export entries, after n of the
// module's (already in dst); it writes the count first when n is 0 and dst
// is empty.
func appendSandboxExports(dst []byte, n, fuel uint32, start int64) []byte {
	if len(dst) == 0 {
		add := uint32(1)
		if start >= 0 {
			add++
		}
		dst = appendU32(dst, n+add)
	}
	dst = appendU32(dst, uint32(len(fuelExport)))
	dst = append(dst, fuelExport...)
	dst = append(dst, 0x03) // global
	dst = appendU32(dst, fuel)
	if start >= 0 {
		dst = appendU32(dst, uint32(len(startExport)))
		dst = append(dst, startExport...)
		dst = append(dst, 0x00) // function
		dst = appendU32(dst, uint32(start))
	}
	return dst
}

// renumber shifts the indices of the module's own functions by one, past
// the added import.
type renumber struct{ imported uint32 }

func (rw *renumber) fn(i uint32) uint32 {
	if i >= rw.imported {
		return i + 1
	}
	return i
}

// funcIdx reads a function index and appends it renumbered.
func (rw *renumber) funcIdx(r *reader, dst []byte) ([]byte, error) {
	i, err := r.u32()
	if err != nil {
		return nil, err
	}
	return appendU32(dst, rw.fn(i)), nil
}

// constExpr copies a constant expression up to its end, renumbering
// ref.func.
func (rw *renumber) constExpr(r *reader, dst []byte) ([]byte, error) {
	for {
		from := r.off
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch {
		case op == 0x0b: // end
			return append(dst, op), nil
		case op == 0xd2: // ref.func
			dst = append(dst, op)
			if dst, err = rw.funcIdx(r, dst); err != nil {
				return nil, err
			}
			continue
		case op == 0x41 || op == 0x23 || op == 0xd0: // i32.const, global.get, ref.null
			err = r.skipLEB(5)
		case op == 0x42:
			err = r.skipLEB(10)
		case op == 0x43:
			_, err = r.bytes(4)
		case op == 0x44:
			_, err = r.bytes(8)
		case op == 0xfd: // v128.const
			var sub uint32
			if sub, err = r.u32(); err == nil && sub != 12 {
				err = fmt.Errorf("instruction 0xfd %d in a constant expression", sub)
			} else if err == nil {
				_, err = r.bytes(16)
			}
		case op == 0x6a || op == 0x6b || op == 0x6c || op == 0x7c || op == 0x7d || op == 0x7e: // extended constants
		default:
			return nil, fmt.Errorf("instruction %#x in a constant expression", op)
		}
		if err != nil {
			return nil, err
		}
		dst = append(dst, r.b[from:r.off]...)
	}
}

// globals copies a global section's entries (not yet the count's change),
// renumbering ref.func in initialisers, with the count raised by one.
func (rw *renumber) globals(r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	dst := appendU32(nil, n+1)
	for range n {
		t, err := r.bytes(2) // value type, mutability
		if err != nil {
			return nil, err
		}
		dst = append(dst, t...)
		if dst, err = rw.constExpr(r, dst); err != nil {
			return nil, err
		}
	}
	if !r.done() {
		return nil, errors.New("bytes after the last global")
	}
	return dst, nil
}

// exports copies an export section, renumbering functions, and adds the
// sandbox's entries.
func (rw *renumber) exports(r *reader, fuel uint32, start int64) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	add := uint32(1)
	if start >= 0 {
		add++
	}
	dst := appendU32(nil, n+add)
	for range n {
		from := r.off
		if _, err := r.name(); err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		dst = append(dst, r.b[from:r.off]...)
		if kind == 0x00 {
			dst, err = rw.funcIdx(r, dst)
		} else {
			from = r.off
			_, err = r.u32()
			dst = append(dst, r.b[from:r.off]...)
		}
		if err != nil {
			return nil, err
		}
	}
	if !r.done() {
		return nil, errors.New("bytes after the last export")
	}
	return appendSandboxExports(dst, n, fuel, start), nil
}

// elements copies an element section, renumbering the functions its
// segments name, in each of the eight segment encodings.
func (rw *renumber) elements(r *reader) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	dst := appendU32(nil, n)
	copyU32 := func() error {
		from := r.off
		_, err := r.u32()
		dst = append(dst, r.b[from:r.off]...)
		return err
	}
	copyByte := func() error {
		c, err := r.byte()
		dst = append(dst, c)
		return err
	}
	for i := range n {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, fmt.Errorf("segment %d: unknown encoding %d", i, flags)
		}
		dst = appendU32(dst, flags)
		if flags == 2 || flags == 6 { // table index
			if err := copyU32(); err != nil {
				return nil, err
			}
		}
		if flags&1 == 0 { // active: offset expression
			if dst, err = rw.constExpr(r, dst); err != nil {
				return nil, fmt.Errorf("segment %d: %w", i, err)
			}
		}
		if flags&3 != 0 { // element kind or reference type
			if err := copyByte(); err != nil {
				return nil, err
			}
		}
		count, err := r.u32()
		if err != nil {
			return nil, err
		}
		if uint64(count) > uint64(len(r.b)-r.off) {
			return nil, errTruncated
		}
		dst = appendU32(dst, count)
		for range count {
			if flags&4 == 0 {
				dst, err = rw.funcIdx(r, dst)
			} else {
				dst, err = rw.constExpr(r, dst)
			}
			if err != nil {
				return nil, fmt.Errorf("segment %d: %w", i, err)
			}
		}
	}
	if !r.done() {
		return nil, errors.New("bytes after the last segment")
	}
	return dst, nil
}

// nameSection renumbers the function names (subsection 1) and drops the
// subsections keyed by function that it does not rewrite (local and label
// names); others are kept as they are.
func (rw *renumber) nameSection(content []byte, off int) ([]byte, error) {
	r := &reader{b: content, off: off}
	dst := append([]byte(nil), content[:off]...)
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		sub, err := r.bytes(uint64(size))
		if err != nil {
			return nil, err
		}
		switch id {
		case 1:
			sr := &reader{b: sub}
			n, err := sr.u32()
			if err != nil {
				return nil, err
			}
			c := appendU32(nil, n)
			for range n {
				if c, err = rw.funcIdx(sr, c); err != nil {
					return nil, err
				}
				from := sr.off
				if _, err := sr.name(); err != nil {
					return nil, err
				}
				c = append(c, sub[from:sr.off]...)
			}
			dst = appendSection(dst, id, c)
		case 2, 3:
			// keyed by function: dropped
		default:
			dst = appendSection(dst, id, sub)
		}
	}
	return dst, nil
}

// countImports returns how many functions and globals a module imports. It
// refuses imports from the sandbox's own module.
func countImports(r *reader) (funcs, globals uint32, err error) {
	n, err := r.u32()
	if err != nil {
		return 0, 0, err
	}
	for range n {
		mod, err := r.name()
		if err != nil {
			return 0, 0, err
		}
		if mod == SandboxModule {
			return 0, 0, fmt.Errorf("imports from %s, the host's sandbox module", SandboxModule)
		}
		if _, err := r.name(); err != nil {
			return 0, 0, err
		}
		kind, err := r.byte()
		if err != nil {
			return 0, 0, err
		}
		switch kind {
		case 0x00: // function: type index
			_, err = r.u32()
			funcs++
		case 0x01: // table: reference type, limits
			if _, err = r.byte(); err == nil {
				err = skipLimits(r)
			}
		case 0x02: // memory: limits
			err = skipLimits(r)
		case 0x03: // global: value type, mutability
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
			globals++
		case 0x04: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return 0, 0, fmt.Errorf("unknown import kind %#x", kind)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return funcs, globals, nil
}

func skipLimits(r *reader) error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if err := r.skipLEB(10); err != nil {
		return err
	}
	if flags&1 != 0 {
		return r.skipLEB(10)
	}
	return nil
}

func exportNames(r *reader) ([]string, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	var names []string
	for range n {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		if _, err := r.byte(); err != nil {
			return nil, err
		}
		if _, err := r.u32(); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

// instrumentCode rewrites the code section. The check goes at the entry of
// every function that makes calls (recursion), at the start of every loop
// body, and after the instructions that may run long without looping: calls
// into the host or through a table, and bulk memory and table operations.
// Function indices are renumbered (see renumber).
func instrumentCode(content []byte, fuel, importedFuncs uint32, rw *renumber) ([]byte, error) {
	yield := importedFuncs // the added import's index
	// if (fuel == 0) yield(); fuel -= 1
	check := appendU32([]byte{0x23}, fuel)        // global.get fuel
	check = append(check, 0x45, 0x04, 0x40, 0x10) // i32.eqz; if; call
	check = appendU32(check, yield)               // yield
	check = append(check, 0x0b, 0x23)             // end; global.get fuel
	check = appendU32(check, fuel)                //
	check = append(check, 0x41, 0x01, 0x6b, 0x24) // i32.const 1; i32.sub; global.set
	check = appendU32(check, fuel)                // fuel
	r := &reader{b: content}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(content)+len(content)/8+16)
	out = appendU32(out, n)
	var (
		body  []byte
		edits []edit
	)
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		b, err := r.bytes(uint64(size))
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		br := &reader{b: b}
		if err := skipLocals(br); err != nil {
			return nil, fmt.Errorf("function %d: locals: %w", i, err)
		}
		codeStart := br.off
		edits = edits[:0]
		calls, err := scanCode(br, fuel, importedFuncs, rw, &edits)
		if err != nil {
			return nil, fmt.Errorf("function %d: offset %#x: %w", i, br.off, err)
		}
		body = append(body[:0], b[:codeStart]...)
		if calls {
			body = append(body, check...)
		}
		prev := codeStart
		for _, e := range edits {
			body = append(body, b[prev:e.at]...)
			if e.fn {
				body = appendU32(body, e.idx)
			} else {
				body = append(body, check...)
			}
			prev = e.at + e.skip
		}
		body = append(body, b[prev:]...)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if !r.done() {
		return nil, errors.New("bytes after the last function")
	}
	return out, nil
}

// edit is a change scanCode asks for at offset at of a function body:
// a check inserted, or (fn) the skip bytes of a function index replaced by
// idx.
type edit struct {
	at, skip int
	fn       bool
	idx      uint32
}

func skipLocals(r *reader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for range n {
		if _, err := r.u32(); err != nil {
			return err
		}
		if _, err := r.byte(); err != nil {
			return err
		}
	}
	return nil
}

// scanCode decodes a function's instructions up to the end of its body. It
// appends to insert the offsets where a check goes and reports whether the
// function calls others.
func scanCode(r *reader, fuel, importedFuncs uint32, rw *renumber, edits *[]edit) (calls bool, err error) {
	check := func() { *edits = append(*edits, edit{at: r.off}) }
	// fnIdx reads a function index and renumbers it.
	fnIdx := func() (uint32, error) {
		at := r.off
		f, err := r.u32()
		if err == nil && f >= importedFuncs {
			*edits = append(*edits, edit{at: at, skip: r.off - at, fn: true, idx: rw.fn(f)})
		}
		return f, err
	}
	u32 := func(n int) error {
		for range n {
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		return nil
	}
	memarg := func() error {
		align, err := r.u32()
		if err != nil {
			return err
		}
		if align&0x40 != 0 { // multiple memories: a memory index follows
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		return r.skipLEB(10)
	}
	for !r.done() {
		op, _ := r.byte()
		switch {
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b || op == 0xd1:
		case op >= 0x45 && op <= 0xc4: // numeric instructions, sign extension
		case op == 0x02 || op == 0x04: // block, if
			err = r.skipLEB(5)
		case op == 0x03: // loop
			if err = r.skipLEB(5); err == nil {
				check()
			}
		case op == 0x0c || op == 0x0d: // br, br_if
			err = u32(1)
		case op == 0x0e: // br_table
			var n uint32
			if n, err = r.u32(); err == nil {
				if uint64(n) > uint64(len(r.b)-r.off) {
					return false, errTruncated
				}
				err = u32(int(n) + 1)
			}
		case op == 0x10 || op == 0x12: // call, return_call
			calls = true
			var f uint32
			if f, err = fnIdx(); err == nil && f < importedFuncs && op == 0x10 {
				check()
			}
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			calls = true
			if err = u32(2); err == nil && op == 0x11 {
				check()
			}
		case op == 0x1c: // select with types
			var n uint32
			if n, err = r.u32(); err == nil {
				_, err = r.bytes(uint64(n))
			}
		case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
			err = u32(1)
		case op == 0x23 || op == 0x24: // global.get, global.set
			var g uint32
			if g, err = r.u32(); err == nil && g >= fuel {
				return false, fmt.Errorf("global index %d out of range", g)
			}
		case op == 0x25 || op == 0x26: // table.get, table.set
			err = u32(1)
		case op >= 0x28 && op <= 0x3e: // loads and stores
			err = memarg()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			err = u32(1)
		case op == 0x41: // i32.const
			err = r.skipLEB(5)
		case op == 0x42: // i64.const
			err = r.skipLEB(10)
		case op == 0x43:
			_, err = r.bytes(4)
		case op == 0x44:
			_, err = r.bytes(8)
		case op == 0xd0: // ref.null
			err = r.skipLEB(5)
		case op == 0xd2: // ref.func
			_, err = fnIdx()
		case op == 0xfc:
			var sub uint32
			if sub, err = r.u32(); err != nil {
				break
			}
			switch {
			case sub <= 7: // saturating conversions
			case sub == 9 || sub == 13 || sub == 15 || sub == 16:
				err = u32(1) // data.drop, elem.drop, table.grow, table.size
			case sub == 11 || sub == 17: // memory.fill, table.fill
				if err = u32(1); err == nil {
					check()
				}
			case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
				if err = u32(2); err == nil {
					check()
				}
			default:
				return false, fmt.Errorf("unknown instruction 0xfc %d", sub)
			}
		case op == 0xfd: // vector instructions
			var sub uint32
			if sub, err = r.u32(); err != nil {
				break
			}
			switch {
			case sub <= 11 || sub == 92 || sub == 93: // loads and stores
				err = memarg()
			case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
				_, err = r.bytes(16)
			case sub >= 21 && sub <= 34: // extract and replace lane
				_, err = r.byte()
			case sub >= 84 && sub <= 91: // load and store lane
				if err = memarg(); err == nil {
					_, err = r.byte()
				}
			}
		case op == 0xfe: // atomic instructions
			var sub uint32
			if sub, err = r.u32(); err != nil {
				break
			}
			if sub == 3 { // atomic.fence
				_, err = r.byte()
			} else {
				err = memarg()
			}
		default:
			return false, fmt.Errorf("unknown instruction %#x", op)
		}
		if err != nil {
			return false, err
		}
	}
	return calls, nil
}
