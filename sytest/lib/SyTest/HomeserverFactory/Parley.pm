# SyTest homeserver factory for Parley (our own code; selected with -I Parley).
#
# Options (after -I Parley on the run-tests.pl command line):
#   --parley-binary PATH         the parley executable (default: $PARLEY_BINARY,
#                                or ../bin/parley)
#   --parley-db sqlite|postgres  database backend (default: $PARLEY_DB, or
#                                sqlite; SyTest's convention POSTGRES=1 also
#                                selects postgres)
# Environment: PARLEY_PG_URL (default postgres://postgres@127.0.0.1:5432) is
# the PostgreSQL server in which a database per homeserver is made.
package SyTest::HomeserverFactory::Parley;

use strict;
use warnings;

use base qw( SyTest::HomeserverFactory );

require SyTest::Homeserver::Parley;

sub _init
{
   my $self = shift;

   my $db = $ENV{PARLEY_DB};
   $db //= ( $ENV{POSTGRES} && $ENV{POSTGRES} ne '0' ) ? 'postgres' : 'sqlite';

   $self->{args} = {
      binary  => $ENV{PARLEY_BINARY} // "../bin/parley",
      db_type => $db,
      pg_url  => $ENV{PARLEY_PG_URL} // 'postgres://postgres@127.0.0.1:5432',
   };

   $self->SUPER::_init( @_ );
}

sub implementation_name
{
   return "parley";
}

sub get_options
{
   my $self = shift;

   return (
      'parley-binary=s' => \$self->{args}{binary},
      'parley-db=s'     => \$self->{args}{db_type},
      $self->SUPER::get_options(),
   );
}

sub print_usage
{
   print STDERR "   --parley-binary PATH         - the parley executable to run\n";
   print STDERR "   --parley-db sqlite|postgres  - database backend for each homeserver\n";
}

sub create_server
{
   my $self = shift;
   my %params = ( @_, %{ $self->{args} } );

   return SyTest::Homeserver::Parley->new( %params );
}

1;
