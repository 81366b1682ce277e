package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS: the one loader of edged's TLS files, for every MQTT client (the
// source, the mqtt sinks' publisher) and for the embedded broker's listener.
// The YAML keys are the node config's (camelCase) everywhere; errors name
// them under "mqtt.tls." and "mqtt.listenTLS.".

// TLSConfig holds the client-side TLS files for ssl:// and wss:// brokers.
type TLSConfig struct {
	// CAFile is a PEM file of CA certificates used to verify the broker.
	// Empty means the system roots.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are the PEM client certificate and key for
	// mutual TLS. Both or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ServerName overrides the name checked in the broker's certificate;
	// empty means the host of the broker URL.
	ServerName string `yaml:"serverName"`
	// InsecureSkipVerify disables verification of the broker's certificate.
	// For tests only: it makes TLS useless against an active attacker.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

// BrokerTLSConfig holds the embedded broker's TLS files.
type BrokerTLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate and key.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ClientCAFile, when set, requires clients to present a certificate
	// signed by one of its CAs (mutual TLS).
	ClientCAFile string `yaml:"clientCAFile"`
}

// Load returns the client tls.Config of c (TLS 1.2 at least).
func (c TLSConfig) Load() (*tls.Config, error) { return loadClientTLS(c) }

func loadClientTLS(c TLSConfig) (*tls.Config, error) {
	t := &tls.Config{
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in, documented as test-only
		MinVersion:         tls.VersionTLS12,
	}
	if c.CAFile != "" {
		pool, err := loadPool("mqtt.tls.caFile", c.CAFile)
		if err != nil {
			return nil, err
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.certFile: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// Load returns the server tls.Config of c; with ClientCAFile set it
// requires and verifies client certificates.
func (c BrokerTLSConfig) Load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mqtt.listenTLS.certFile: %w", err)
	}
	t := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pool, err := loadPool("mqtt.listenTLS.clientCAFile", c.ClientCAFile)
		if err != nil {
			return nil, err
		}
		t.ClientCAs = pool
		t.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return t, nil
}

// loadPool reads a PEM file of CA certificates; key names the YAML key.
func loadPool(key, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in %q", key, file)
	}
	return pool, nil
}
