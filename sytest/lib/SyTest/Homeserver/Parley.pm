# SyTest homeserver driver for Parley (our own code).
#
# For each homeserver SyTest asks for, it allocates two ports, makes a TLS
# certificate signed by SyTest's test CA (keys/ca.crt, relative to the SyTest
# checkout that run-tests.pl runs in), writes a Parley YAML config into the
# server's directory, makes a fresh database (an SQLite file, or a PostgreSQL
# database named sytest_parley_<index>), and runs
# `parley serve --config ...`, logging to <hs_dir>/parley.log.
#
# The server name is "<bind_host>:<https port>", so user IDs look like
# @alice:localhost:8800; SyTest's clients talk HTTPS to that port.
package SyTest::Homeserver::Parley;

use strict;
use warnings;

use base qw( SyTest::Homeserver );

use Carp;
use Cwd qw( abs_path );
use Future;
use JSON ();
use SyTest::SSL qw( ensure_ssl_key create_ssl_cert );

sub _init
{
   my $self = shift;
   my ( $args ) = @_;

   $self->{$_} = delete $args->{$_} for qw( binary db_type pg_url );

   defined $self->{binary} or croak "Need a parley binary";
   $self->{db_type} =~ m/^(sqlite|postgres)$/ or
      croak "parley-db must be sqlite or postgres, not '$self->{db_type}'";

   $self->SUPER::_init( $args );

   my $idx = $self->{hs_index};
   $self->{ports} = {
      https => main::alloc_port( "parley[$idx].https" ),
      http  => main::alloc_port( "parley[$idx].http" ),
   };
}

sub server_name
{
   my $self = shift;
   return $self->{bind_host} . ":" . $self->{ports}{https};
}

sub federation_host
{
   my $self = shift;
   return $self->{bind_host};
}

sub federation_port
{
   my $self = shift;
   return $self->{ports}{https};
}

sub secure_port
{
   my $self = shift;
   return $self->{ports}{https};
}

sub unsecure_port
{
   my $self = shift;
   return $self->{ports}{http};
}

sub public_baseurl
{
   my $self = shift;
   return "https://$self->{bind_host}:$self->{ports}{https}";
}

# The address Parley listens on: loopback only. "localhost" is pinned to
# 127.0.0.1 so that the listener and SyTest agree on one address family.
sub _listen_host
{
   my $self = shift;
   my $host = $self->{bind_host};
   return $host eq "localhost" ? "127.0.0.1" : $host;
}

sub start
{
   my $self = shift;

   my $hs_dir = $self->{hs_dir};
   my $output = $self->{output};

   my $binary = abs_path( $self->{binary} );
   defined $binary and -x $binary or
      return Future->fail( "parley binary not found at $self->{binary}" );

   # TLS certificate for the bind host, signed by SyTest's CA.
   my $cert = "$hs_dir/tls.crt";
   my $key  = "$hs_dir/tls.key";
   ensure_ssl_key( $key );
   create_ssl_cert( $cert, $key, $self->{bind_host} );

   my $db_url = eval { $self->_fresh_database } or
      return Future->fail( "Unable to prepare the database: $@" );

   # Only keys Parley knows: its config loader rejects unknown ones.
   my $config = {
      server_name      => $self->server_name,
      signing_key_path => "$hs_dir/signing.key",
      database         => { url => $db_url, max_open_conns => 8 },
      listen           => {
         http     => $self->_listen_host . ":" . $self->{ports}{http},
         https    => $self->_listen_host . ":" . $self->{ports}{https},
         tls_cert => $cert,
         tls_key  => $key,
      },
      registration => {
         enabled       => JSON::true,
         shared_secret => "reg_secret",
         allow_guests  => JSON::true,
      },
      rate_limits => { enabled => JSON::false },
      # SyTest uploads placeholder device keys (Synapse does not check them).
      e2ee        => { verify_device_key_signatures => JSON::false },
      federation  => {
         enabled         => JSON::true,
         # SyTest's own federation servers use certificates from its CA.
         trusted_ca_file => abs_path( "keys/ca.crt" ),
         # Every server of the test network listens on loopback.
         allow_private_ips => JSON::true,
      },
      # SyTest's identity server has a self-signed certificate without a
      # subject alternative name (Synapse uses an insecure client for it too).
      identity_servers => { insecure_skip_verify => JSON::true },
      # SyTest's fake federation servers compute event IDs with the
      # redaction algorithm of room versions 1-10 (hash_event in
      # lib/SyTest/Federation/Protocol.pm), so they get the IDs of a v11
      # m.room.create event wrong; Synapse's default is 10.
      rooms => { default_version => "10" },
      media => { path => "$hs_dir/media" },
      log   => { level => $ENV{PARLEY_LOG_LEVEL} // "debug" },
      # SyTest's application services (tests/60app-services), which it
      # configures on the first homeserver only; their URLs are on SyTest's
      # HTTPS test server, trusted through federation.trusted_ca_file.
      app_service_config_files => $self->{app_service_config_files} // [],
   };
   my $config_path = $self->write_yaml_file( "parley.yaml" => $config );

   my $log = "$hs_dir/parley.log";
   my $idx = $self->{hs_index};
   $output->diag( "Starting Parley server-$idx: $binary serve --config $config_path (log $log)" );

   # Environment overrides would beat the config file: drop them.
   my %env = %ENV;
   delete @env{qw( PARLEY_DATABASE_URL PARLEY_SERVER_NAME PARLEY_REGISTRATION_SHARED_SECRET )};

   return $self->_start_process_and_await_connectable(
      setup => [ env => \%env ],
      # The server's output goes to its log file; `exec` keeps the pid, so
      # SyTest's SIGINT at the end reaches parley itself.
      command => [
         "/bin/sh", "-c", 'exec "$0" serve --config "$1" >>"$2" 2>&1',
         $binary, $config_path, $log,
      ],
      connect_host => $self->_listen_host,
      connect_port => $self->{ports}{https},
      name => "parley-$idx",
   )->else( sub {
      my ( $err ) = @_;
      Future->fail( "Unable to start parley: $err (see $log)\n" );
   })->on_done( sub {
      $output->diag( "Started Parley server-$idx" );
   });
}

# Returns the database URL for this server, emptied first.
sub _fresh_database
{
   my $self = shift;
   my $hs_dir = $self->{hs_dir};

   if( $self->{db_type} eq "sqlite" ) {
      my $path = "$hs_dir/parley.db";
      unlink $path, "$path-wal", "$path-shm";
      return "sqlite://$path";
   }

   my $base = $self->{pg_url};
   $base =~ s{/+$}{};
   my ( $user, $host, $port ) = ( "postgres", "127.0.0.1", 5432 );
   if( $base =~ m{^postgres(?:ql)?://(?:([^@/:]+)(?::[^@/]*)?@)?([^:/]+)(?::(\d+))?} ) {
      ( $user, $host, $port ) = ( $1 // $user, $2, $3 // 5432 );
   }
   my $dbname = "sytest_parley_" . $self->{hs_index};

   require DBI;
   my $dbh = DBI->connect( "dbi:Pg:dbname=postgres;host=$host;port=$port", $user, undef,
      { RaiseError => 1, PrintError => 0, AutoCommit => 1 } );
   $dbh->do( "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" );
   $dbh->do( "CREATE DATABASE $dbname" );
   $dbh->disconnect;

   $self->{output}->diag( "Created PostgreSQL database $dbname" );
   return "$base/$dbname?sslmode=disable";
}

1;
