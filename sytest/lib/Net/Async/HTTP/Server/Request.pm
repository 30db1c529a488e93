# One request received by Net::Async::HTTP::Server (Parley's own minimal
# implementation; see Net/Async/HTTP/Server.pm).
package Net::Async::HTTP::Server::Request;

use strict;
use warnings;

use Carp;
use HTTP::Response;
use HTTP::Status ();

our $VERSION = '0.14';

# new( $conn, $http_request ) - made by the server's make_request.
sub new
{
   my $class = shift;
   my ( $conn, $req ) = @_;

   return bless {
      conn      => $conn,
      req       => $req,
      is_done   => 0,
      is_closed => 0,
   }, $class;
}

# The underlying HTTP::Request.
sub as_http_request { $_[0]->{req} }

sub method   { $_[0]->{req}->method }
sub protocol { $_[0]->{req}->protocol }
sub body     { $_[0]->{req}->content }

# path - the undecoded path part of the request URI.
sub path
{
   my $self = shift;
   my $path = $self->{req}->uri->path;
   return length $path ? $path : "/";
}

# query_string - the raw query, or undef when there is none.
sub query_string { scalar $_[0]->{req}->uri->query }

# query_form - the decoded query as a list of name/value pairs.
sub query_form { $_[0]->{req}->uri->query_form }

# query_param( $name ) - the (first) decoded value of one query parameter.
sub query_param
{
   my $self = shift;
   my ( $name ) = @_;
   my %q = $self->{req}->uri->query_form;
   return $q{$name};
}

# header( $name ) - a request header's value.
sub header { $_[0]->{req}->header( $_[1] ) }

# headers - a list of [ name, value ] pairs.
sub headers
{
   my $self = shift;
   my @h;
   $self->{req}->headers->scan( sub { push @h, [ @_ ] } );
   return @h;
}

# stream - the connection (an IO::Async::Stream) the request arrived on.
sub stream { $_[0]->{conn} }

sub is_done   { $_[0]->{is_done} }
sub is_closed { $_[0]->{is_closed} }

# respond( $http_response ) - sends the whole response. A Content-Length is
# added when the response has neither one nor chunked transfer encoding.
sub respond
{
   my $self = shift;
   my ( $response ) = @_;

   croak "This request has already been responded to" if $self->{is_done};
   $self->{is_done} = 1;
   return if $self->{is_closed};

   my $content = $response->content // "";
   if( !defined $response->header( "Content-Length" ) and
       ( $response->header( "Transfer-Encoding" ) // "" ) !~ m/chunked/i ) {
      $response->header( "Content-Length" => length $content );
   }

   my $req_proto = $self->{req}->protocol // "HTTP/1.1";
   my $conn_hdr  = lc( $self->{req}->header( "Connection" ) // "" );
   my $close = ( $req_proto eq "HTTP/1.0" and $conn_hdr ne "keep-alive" ) || $conn_hdr eq "close";
   $response->header( "Connection" => "close" ) if $close;

   $response->protocol( "HTTP/1.1" ) unless defined $response->protocol;
   my $status = $response->code;
   my $message = $response->message // HTTP::Status::status_message( $status ) // "";
   my $bytes = $response->protocol . " $status $message\r\n" .
               $response->headers->as_string( "\r\n" ) . "\r\n" . $content;

   $self->{response_bytes} = $bytes;
   $self->{close_after} = $close;
   $self->{conn}->_flush_responses;
}

1;
