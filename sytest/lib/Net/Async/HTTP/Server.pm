# Parley's own minimal HTTP/1.1 server for IO::Async, written because Debian
# does not package the CPAN distribution Net::Async::HTTP::Server that SyTest
# uses. It implements the interface SyTest relies on (version 0.09 and later):
#
#   my $server = Net::Async::HTTP::Server->new(
#      on_request    => sub { my ( $server, $req ) = @_; $req->respond( $resp ) },
#      request_class => "My::Request",   # optional, a subclass of ::Request
#   );
#   $loop->add( $server );
#   $server->listen( host => ..., service => ..., extensions => [ 'SSL' ], ... );
#
# Each accepted connection is a Net::Async::HTTP::Server::Protocol (an
# IO::Async::Stream) child of the server; each request a
# Net::Async::HTTP::Server::Request made by $server->make_request.
package Net::Async::HTTP::Server;

use strict;
use warnings;

use base qw( IO::Async::Listener );

use Carp;

use Net::Async::HTTP::Server::Protocol;
use Net::Async::HTTP::Server::Request;

our $VERSION = '0.14';

sub _init
{
   my $self = shift;
   my ( $params ) = @_;

   $params->{handle_class} = "Net::Async::HTTP::Server::Protocol";
   $self->{request_class} = "Net::Async::HTTP::Server::Request";

   $self->SUPER::_init( $params );
}

sub configure
{
   my $self = shift;
   my %params = @_;

   foreach (qw( on_request request_class )) {
      $self->{$_} = delete $params{$_} if exists $params{$_};
   }

   $self->SUPER::configure( %params );
}

# Called by IO::Async::Listener with each accepted connection.
sub on_accept
{
   my $self = shift;
   my ( $conn ) = @_;

   $conn->configure(
      on_closed => sub {
         my $conn = shift;
         $conn->_on_closed;
         $conn->remove_from_parent if $conn->parent;
      },
   );

   $self->add_child( $conn );
   return $conn;
}

# make_request( $conn, $http_request ) - builds the request object handed to
# on_request. Subclasses may override it.
sub make_request
{
   my $self = shift;
   return $self->{request_class}->new( @_ );
}

sub _received_request
{
   my $self = shift;
   my ( $request ) = @_;

   $self->invoke_event( on_request => $request );
}

1;
