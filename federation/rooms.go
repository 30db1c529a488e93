package federation

import (
	"sync"

	"github.com/gorilla/mux"
)

// txnLocks serialises inbound transactions with the same (origin, txn_id),
// so a retried transaction waits for the first and then gets its stored result.
type txnLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func newTxnLocks() *txnLocks { return &txnLocks{locks: map[string]*sync.Mutex{}} }

// registerRooms attaches the room endpoints of the federation API.
func (a *API) registerRooms(root *mux.Router) {
	v1 := root.PathPrefix("/_matrix/federation/v1").Subrouter()
	v1.Handle("/query/profile", a.authed("query_profile", a.queryProfile)).Methods("GET")
	v1.Handle("/query/directory", a.authed("query_directory", a.queryDirectory)).Methods("GET")
}
