// Package guest holds what every kind of wproxy module exports the same
// way: the buffer the host fills before a call that consumes it
// (wproxy_alloc). The SDK packages of each module kind import it, so a module
// exports wproxy_alloc once whichever kind it is.
package guest
