// Command services exercises the host's services from a pick, so that tests
// can observe them through the index it returns:
//
//	hash 1: the number of timers fired so far
//	hash 2: set a 10 ms timer; 0
//	hash 3: the value of request attribute "header:X-Index" as an index
//	hash 4: fetch the URL in attribute "query:url"; 0 started, 1 denied, 2 other error
//	hash 5: 1 when the last fetch finished with status 200 and body "ok", 2 other
//	        result, 0 still pending
//	hash 6: claim endpoint 0's load sample for 1 s; 1 claimed, 0 not
//	hash 7: record load 0.5 for endpoint 0 and return its sample (in tenths)
package main

import (
	"strconv"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

type p struct {
	fired int
	fetch int64
}

func (q *p) SetEndpoints(uint64, []lb.Endpoint) error { return nil }

func (q *p) OnTimer(id uint64) {
	if id == 42 {
		q.fired++
	}
}

func (q *p) Pick(r lb.Request) int {
	switch r.Hash {
	case 1:
		return q.fired
	case 2:
		if err := lb.SetTimer(10, 42); err != nil {
			return 9
		}
		return 0
	case 3:
		v, ok := lb.RequestAttr("header:X-Index")
		if !ok {
			return lb.NoEndpoint
		}
		n, _ := strconv.Atoi(v)
		return n
	case 4:
		url, _ := lb.RequestAttr("query:url")
		id, err := lb.Fetch(&lb.FetchRequest{URL: url, TimeoutMS: 2000})
		switch err {
		case nil:
			q.fetch = id
			return 0
		case lb.ErrFetchDenied:
			return 1
		}
		return 2
	case 5:
		res, done, err := lb.FetchDone(q.fetch)
		switch {
		case err != nil:
			return 3
		case !done:
			return 0
		case res.Status == 200 && string(res.Body) == "ok":
			return 1
		}
		return 2
	case 6:
		if lb.ClaimLoadSample(0, 1000) {
			return 1
		}
		return 0
	case 7:
		lb.SetEndpointLoad(0, lb.LoadScale/2)
		load, _, ok := lb.EndpointLoad(0)
		if !ok {
			return 9
		}
		return int(load * 10 / lb.LoadScale)
	}
	return 0
}

func init() { lb.Register(func([]byte) (lb.Policy, error) { return &p{}, nil }) }

func main() {}
