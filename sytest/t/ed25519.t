# Tests for sytest/lib/Crypt/Ed25519.pm against RFC 8032 section 7.1 vectors.
use strict;
use warnings;
use Test::More;

use Crypt::Ed25519;

my @vectors = (
   # secret key, public key, message, signature (hex)
   [ "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" ],
   [ "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" ],
);

for my $v ( @vectors ) {
   my ( $sk, $pk, $msg, $sig ) = map { pack "H*", $_ } @$v;
   is( unpack( "H*", Crypt::Ed25519::eddsa_public_key( $sk ) ), $v->[1], "public key" );
   is( unpack( "H*", Crypt::Ed25519::eddsa_sign( $msg, $pk, $sk ) ), $v->[3], "signature" );
   ok( Crypt::Ed25519::verify( $msg, $pk, $sig ), "verifies" );
   ok( !Crypt::Ed25519::verify( $msg . "x", $pk, $sig ), "other message does not verify" );
   my $bad = $sig; substr( $bad, 0, 1 ) ^= "\x01";
   ok( !Crypt::Ed25519::verify( $msg, $pk, $bad ), "altered signature does not verify" );
}

my $sk = Crypt::Ed25519::eddsa_secret_key();
is( length $sk, 32, "secret key is 32 bytes" );
isnt( $sk, Crypt::Ed25519::eddsa_secret_key(), "secret keys are random" );
my $pk = Crypt::Ed25519::eddsa_public_key( $sk );
ok( Crypt::Ed25519::verify( "hello", $pk, Crypt::Ed25519::eddsa_sign( "hello", $pk, $sk ) ), "round trip" );
ok( !Crypt::Ed25519::verify( "hello", $pk, "short" ), "short signature is false, not an error" );
ok( !eval { Crypt::Ed25519::verify_croak( "hello", $pk, "\0" x 64 ); 1 }, "verify_croak croaks" );

done_testing;
