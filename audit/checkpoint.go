package audit

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Checkpoint is the trail's head at a moment, signed by the gateway's key
// (its assertion key, ES256): the records up to Seq existed with the last
// one's hash Hash. Someone who cuts records off the end of the trail (which
// the chain alone cannot show) contradicts the last checkpoint.
type Checkpoint struct {
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

// SignCheckpoint signs cp as a compact JWS carrying the public key (jwk
// header), so a verifier without the key file can still check it.
func SignCheckpoint(key *ecdsa.PrivateKey, cp Checkpoint) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("portero-audit-checkpoint"))
	if err != nil {
		return "", fmt.Errorf("audit checkpoint signer: %w", err)
	}
	cp.Time = cp.Time.UTC()
	payload, _ := json.Marshal(cp)
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign audit checkpoint: %w", err)
	}
	return obj.CompactSerialize()
}

// VerifyCheckpoint checks a signed checkpoint. With pinned it must be
// signed by that key; without, by the key it carries (which shows the
// checkpoint was not altered, not who signed it).
func VerifyCheckpoint(jws string, pinned *ecdsa.PublicKey) (Checkpoint, error) {
	var cp Checkpoint
	obj, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return cp, fmt.Errorf("not a signed checkpoint: %w", err)
	}
	if len(obj.Signatures) != 1 {
		return cp, errors.New("not a signed checkpoint: want one signature")
	}
	var key any
	switch {
	case pinned != nil:
		key = pinned
	case obj.Signatures[0].Header.JSONWebKey != nil:
		key = obj.Signatures[0].Header.JSONWebKey.Key
	default:
		return cp, errors.New("the checkpoint names no key")
	}
	payload, err := obj.Verify(key)
	if err != nil {
		if pinned != nil {
			return cp, errors.New("the signature does not verify with the gateway's key (assertion.key_file)")
		}
		return cp, errors.New("the signature does not verify")
	}
	if err := json.Unmarshal(payload, &cp); err != nil {
		return cp, fmt.Errorf("checkpoint payload: %w", err)
	}
	return cp, nil
}

// Trail is where the trail is kept (the access store): records in order
// and the signed checkpoints.
type Trail interface {
	// AuditScan calls fn with each record after seq after, in order, as
	// stored (canonical JSON).
	AuditScan(ctx context.Context, after int64, fn func(raw []byte) error) error
	// AuditCheckpoints returns the signed checkpoints, oldest first.
	AuditCheckpoints(ctx context.Context) ([]string, error)
}

// Summary is what VerifyTrail found.
type Summary struct {
	Records     int
	Head        int64
	Checkpoints int
	OtherKeys   int        // checkpoints signed by another key than the pinned one (before a key rotation)
	Last        Checkpoint // the newest checkpoint
}

// VerifyTrail checks the whole trail: the hash chain from the first record,
// each checkpoint's signature (with pinned, when given), that each
// checkpointed record has the hash the checkpoint signed, and that no
// checkpoint covers records the trail no longer has (its tail was cut).
// The error is a *BreakError naming the first broken record or checkpoint.
func VerifyTrail(ctx context.Context, t Trail, pinned *ecdsa.PublicKey) (Summary, error) {
	var sum Summary
	jwss, err := t.AuditCheckpoints(ctx)
	if err != nil {
		return sum, err
	}
	want := map[int64]Checkpoint{}
	lastPinned := false
	for i, jws := range jwss {
		// Each checkpoint must be intact (it carries its key); with the
		// gateway's key, the newest must be signed by it. That one covers
		// the whole chain up to it, so older checkpoints signed before a
		// key rotation still count.
		cp, err := VerifyCheckpoint(jws, nil)
		if err != nil {
			return sum, &BreakError{Why: fmt.Sprintf("checkpoint %d of %d: %v", i+1, len(jwss), err)}
		}
		byPinned := pinned != nil
		if byPinned {
			_, perr := VerifyCheckpoint(jws, pinned)
			byPinned = perr == nil
			if !byPinned {
				sum.OtherKeys++
			}
		}
		want[cp.Seq] = cp
		if cp.Seq >= sum.Last.Seq {
			sum.Last, lastPinned = cp, byPinned
		}
	}
	sum.Checkpoints = len(jwss)
	if pinned != nil && len(jwss) > 0 && !lastPinned {
		return sum, &BreakError{Why: fmt.Sprintf("the newest checkpoint (record %d, signed at %s) is not signed with the gateway's key (assertion.key_file): it was forged, or the key is not the one the gateway uses",
			sum.Last.Seq, sum.Last.Time.Format(time.RFC3339))}
	}
	var c Chain
	err = t.AuditScan(ctx, 0, func(raw []byte) error {
		rec, err := c.Next(raw)
		if err != nil {
			seq := rec.Seq
			if seq == 0 {
				seq, _ = c.Head()
				seq++
			}
			return &BreakError{Seq: seq, Why: err.Error()}
		}
		if cp, ok := want[rec.Seq]; ok && cp.Hash != rec.Hash {
			return &BreakError{Seq: rec.Seq, Why: fmt.Sprintf("its hash differs from the one the checkpoint of %s signed (the trail was rewritten from here)", cp.Time.Format(time.RFC3339))}
		}
		return nil
	})
	sum.Records = c.Len()
	sum.Head, _ = c.Head()
	if err != nil {
		return sum, err
	}
	if sum.Last.Seq > sum.Head {
		return sum, &BreakError{Seq: sum.Head + 1, Why: fmt.Sprintf("missing: the trail ends at record %d but the checkpoint of %s covers records up to %d (the tail was cut off)",
			sum.Head, sum.Last.Time.Format(time.RFC3339), sum.Last.Seq)}
	}
	return sum, nil
}
