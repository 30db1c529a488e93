package storage

import "context"

// ServerKey is one verify key of a remote server.
type ServerKey struct {
	ServerName string
	KeyID      string
	// PublicKey is unpadded base64.
	PublicKey    string
	ValidUntilTS int64
	// ExpiredTS is 0 for a current key, else when the server stopped using it.
	ExpiredTS int64
}

// KeyFetchError is the backoff state of failed key fetches from one server.
type KeyFetchError struct {
	Failures int
	LastTS   int64
	Message  string
}

// QueueItem is one queued outbound PDU or EDU.
type QueueItem struct {
	ID          int64
	Destination string
	// Kind is "pdu" or "edu".
	Kind    string
	Payload []byte
}

// FederationStore stores remote server keys, inbound transaction results and
// the outbound transaction queue.
type FederationStore interface {
	// StoreServerKeys replaces a server's cached key response and upserts its keys.
	// It clears the server's fetch error.
	StoreServerKeys(ctx context.Context, serverName string, response []byte, validUntilTS, fetchedTS int64, keys []ServerKey) error
	// ServerKeyResponse returns a server's cached key response; ErrNotFound if none.
	ServerKeyResponse(ctx context.Context, serverName string) (response []byte, validUntilTS, fetchedTS int64, err error)
	// ServerKeys returns every key known for a server, current and expired.
	ServerKeys(ctx context.Context, serverName string) ([]ServerKey, error)
	// StoreKeyFetchError records a failed key fetch (incrementing the failure count).
	StoreKeyFetchError(ctx context.Context, serverName, message string, ts int64) error
	// GetKeyFetchError returns the fetch error state; ErrNotFound if none.
	GetKeyFetchError(ctx context.Context, serverName string) (*KeyFetchError, error)

	// FederationTxn returns the stored response to an inbound transaction; ErrNotFound if new.
	FederationTxn(ctx context.Context, origin, txnID string) ([]byte, error)
	// StoreFederationTxn records the response to an inbound transaction.
	StoreFederationTxn(ctx context.Context, origin, txnID string, response []byte, ts int64) error

	// EnqueueOutbound queues one payload for each destination, in one transaction.
	EnqueueOutbound(ctx context.Context, destinations []string, kind string, payload []byte, ts int64) error
	// PendingOutbound returns up to limit queued items of a kind for a destination, oldest first.
	PendingOutbound(ctx context.Context, destination, kind string, limit int) ([]QueueItem, error)
	// DeleteOutbound removes delivered items.
	DeleteOutbound(ctx context.Context, ids []int64) error
	// OutboundDestinations lists destinations with queued items.
	OutboundDestinations(ctx context.Context) ([]string, error)
}
