package discovery

// Host is the host's side of HTTP and SetEndpoints, as a module's native
// tests provide it with SetNativeHost. In a module built for wproxy the real
// host answers and SetNativeHost has no effect.
type Host interface {
	// HTTP answers a request: a Response (Status 0 and Error for a failure
	// before a response), or ErrHTTPDenied for a destination the source may
	// not reach.
	HTTP(req *Request) (*Response, error)
	// SetEndpoints receives the set as the host decodes it; an error is the
	// host refusing it (errno 1).
	SetEndpoints(eps []Endpoint) error
}
