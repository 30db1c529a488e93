# One HTTP/1.1 connection of Net::Async::HTTP::Server (Parley's own minimal
# implementation; see Net/Async/HTTP/Server.pm). Parses requests (with a
# Content-Length or chunked body), hands each to the server, and writes the
# responses back in request order (pipelining-safe).
package Net::Async::HTTP::Server::Protocol;

use strict;
use warnings;

use base qw( IO::Async::Stream );

use Carp;
use HTTP::Request;
use HTTP::Headers;

our $VERSION = '0.14';

sub _init
{
   my $self = shift;
   $self->{pending} = [];   # requests awaiting their response, in order
   $self->SUPER::_init( @_ );
}

sub on_read
{
   my $self = shift;
   my ( $buffref, $eof ) = @_;

   return 0 if $eof;

   # Wait for a whole header block.
   my $end = index( $$buffref, "\r\n\r\n" );
   my $sep_len = 4;
   if( $end < 0 ) {
      $end = index( $$buffref, "\n\n" );
      $sep_len = 2;
   }
   if( $end < 0 ) {
      if( length $$buffref > 64 * 1024 ) {
         $self->_bad_request( "Request headers too large" );
      }
      return 0;
   }

   my $head = substr( $$buffref, 0, $end );
   $head =~ s/^(\r?\n)+//;
   my ( $request_line, @header_lines ) = split m/\r?\n/, $head;

   my ( $method, $uri, $protocol ) = ( $request_line // "" ) =~ m{^(\S+)\s+(\S+)(?:\s+(HTTP/\d+\.\d+))?\s*$}
      or return $self->_bad_request( "Bad request line" );
   $protocol //= "HTTP/0.9";

   my $headers = HTTP::Headers->new;
   my $last;
   foreach my $line ( @header_lines ) {
      if( $line =~ m/^[ \t]+(.*)$/ and defined $last ) {
         my $v = $headers->header( $last );
         $headers->header( $last => "$v $1" );
         next;
      }
      my ( $name, $value ) = $line =~ m/^([^:\s]+):\s*(.*?)\s*$/
         or return $self->_bad_request( "Bad header line" );
      $headers->push_header( $name => $value );
      $last = $name;
   }

   my $body_start = $end + $sep_len;
   my $body;
   my $consumed;

   my $te = $headers->header( "Transfer-Encoding" );
   if( defined $te and $te =~ m/chunked/i ) {
      # Decode a chunked body; return 0 until it has all arrived.
      my $pos = $body_start;
      $body = "";
      while( 1 ) {
         my $nl = index( $$buffref, "\n", $pos );
         return 0 if $nl < 0;
         my $size_line = substr( $$buffref, $pos, $nl - $pos );
         $size_line =~ s/[;\r].*//s;
         $size_line =~ m/^[0-9a-fA-F]+$/ or return $self->_bad_request( "Bad chunk size" );
         my $size = hex $size_line;
         $pos = $nl + 1;
         if( $size == 0 ) {
            # Skip any trailers up to the blank line.
            while( 1 ) {
               my $tnl = index( $$buffref, "\n", $pos );
               return 0 if $tnl < 0;
               my $tline = substr( $$buffref, $pos, $tnl - $pos );
               $pos = $tnl + 1;
               last if $tline =~ m/^\r?$/;
            }
            last;
         }
         return 0 if length( $$buffref ) < $pos + $size + 2;
         $body .= substr( $$buffref, $pos, $size );
         $pos += $size;
         $pos++ if substr( $$buffref, $pos, 1 ) eq "\r";
         $pos++ if substr( $$buffref, $pos, 1 ) eq "\n";
      }
      $consumed = $pos;
      $headers->remove_header( "Transfer-Encoding" );
      $headers->header( "Content-Length" => length $body );
   }
   else {
      my $len = $headers->header( "Content-Length" ) // 0;
      $len =~ m/^\d+$/ or return $self->_bad_request( "Bad Content-Length" );
      return 0 if length( $$buffref ) < $body_start + $len;
      $body = substr( $$buffref, $body_start, $len );
      $consumed = $body_start + $len;
   }

   substr( $$buffref, 0, $consumed ) = "";

   my $http_request = HTTP::Request->new( $method, $uri, $headers, $body );
   $http_request->protocol( $protocol );

   my $server = $self->parent;
   my $request = $server->make_request( $self, $http_request );
   push @{ $self->{pending} }, $request;

   $server->_received_request( $request );

   return 1;
}

sub _bad_request
{
   my $self = shift;
   my ( $message ) = @_;
   $self->write( "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n" .
                 "Content-Length: " . length( $message ) . "\r\nConnection: close\r\n\r\n$message" );
   $self->close_when_empty;
   return 0;
}

# Called by a request once it has a response: write out every finished
# response at the head of the queue.
sub _flush_responses
{
   my $self = shift;

   while( my $head = $self->{pending}[0] ) {
      last unless defined $head->{response_bytes};
      shift @{ $self->{pending} };
      $self->write( $head->{response_bytes} );
      if( $head->{close_after} ) {
         $self->close_when_empty;
         $self->{pending} = [];
         last;
      }
   }
}

sub _on_closed
{
   my $self = shift;
   $_->{is_closed} = 1 for @{ $self->{pending} };
   $self->{pending} = [];
}

1;
