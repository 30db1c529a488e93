// Package signing loads and generates the server's ed25519 signing key, stored
// in the Synapse key file format ("ed25519 <version> <base64 seed>").
package signing

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

const keyIDAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// Generate returns a new key whose ID is ed25519:a_XXXX (key IDs allow only [A-Za-z0-9_]).
func Generate() *federation.SigningKey {
	k := federation.GenerateSigningKey()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = keyIDAlphabet[int(b[i])%len(keyIDAlphabet)]
	}
	k.ID = id.NewKeyID(id.KeyAlgorithmEd25519, "a_"+string(b))
	return k
}

// Write stores key at path with owner-only permissions, creating directories.
func Write(path string, key *federation.SigningKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(key.SynapseString()+"\n"), 0o600)
}

// Load reads the key at path.
func Load(path string) (*federation.SigningKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	key, err := federation.ParseSynapseKey(line)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

// LoadOrGenerate loads the key at path, generating and writing one if the file does not exist.
func LoadOrGenerate(path string) (key *federation.SigningKey, created bool, err error) {
	key, err = Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = Generate()
		return key, true, Write(path, key)
	}
	return key, false, err
}
