# Parley's own minimal stand-in for the CPAN module Crypt::Ed25519, which
# Debian does not package. It offers the functions SyTest calls, with the
# same calling conventions, implemented over CryptX's Crypt::PK::Ed25519
# (Debian package libcryptx-perl).
#
# Keys are raw bytes: a secret key is the 32-byte seed, a public key the
# 32-byte encoded point, a signature 64 bytes.
package Crypt::Ed25519;

use strict;
use warnings;

use Carp;
use Crypt::PK::Ed25519;
use Crypt::PRNG qw( random_bytes );

our $VERSION = '1.05';

use Exporter 'import';
our @EXPORT_OK = qw(
   eddsa_secret_key eddsa_public_key eddsa_sign eddsa_verify eddsa_verify_croak
   generate_keypair sign verify verify_croak
);

sub _private_key
{
   my ( $secret ) = @_;
   defined $secret and length $secret == 32 or
      croak "Crypt::Ed25519: secret key must be 32 bytes";
   return Crypt::PK::Ed25519->new->import_key_raw( $secret, 'private' );
}

# eddsa_secret_key() - 32 fresh random bytes usable as a secret key (seed).
sub eddsa_secret_key
{
   return random_bytes( 32 );
}

# eddsa_public_key( $secret_key ) - the public key for a 32-byte secret key.
sub eddsa_public_key
{
   my ( $secret ) = @_;
   return _private_key( $secret )->export_key_raw( 'public' );
}

# eddsa_sign( $message, $public_key, $secret_key ) - a 64-byte signature.
# $public_key may be undef; it is derived from $secret_key either way.
sub eddsa_sign
{
   my ( $message, undef, $secret ) = @_;
   return _private_key( $secret )->sign_message( $message );
}

# verify( $message, $public_key, $signature ) - true when the signature is
# valid. Like the original it looks only at the first 64 bytes of the
# signature, and returns false (rather than dying) for malformed input.
sub verify
{
   my ( $message, $public_key, $signature ) = @_;
   return 0 unless defined $public_key and length $public_key == 32;
   return 0 unless defined $signature and length $signature >= 64;
   my $pk = eval { Crypt::PK::Ed25519->new->import_key_raw( $public_key, 'public' ) }
      or return 0;
   return $pk->verify_message( substr( $signature, 0, 64 ), $message ) ? 1 : 0;
}

*eddsa_verify = \&verify;

# verify_croak( ... ) - like verify, but croaks on a bad signature.
sub verify_croak
{
   verify( @_ ) or croak "Ed25519 signature verification failed";
}

*eddsa_verify_croak = \&verify_croak;

# generate_keypair( [$secret_key] ) - ( $public_key, $secret_key ).
# Unlike the original (which returns a 64-byte expanded private key for
# its sign()), the secret returned here is the 32-byte seed, and sign()
# below takes the same: enough for callers that pair the two.
sub generate_keypair
{
   my ( $secret ) = @_;
   $secret //= eddsa_secret_key();
   return ( eddsa_public_key( $secret ), $secret );
}

# sign( $message, $public_key, $secret_key ) - as eddsa_sign.
sub sign
{
   my ( $message, $public_key, $secret ) = @_;
   $secret = substr( $secret, 0, 32 ) if defined $secret and length $secret == 64;
   return eddsa_sign( $message, $public_key, $secret );
}

1;
