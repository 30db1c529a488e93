# Tests for sytest/lib/Net/Async/HTTP/Server*.pm: requests with bodies
# (Content-Length and chunked), query parameters, keep-alive, pipelining
# order and subclassing through request_class / make_request.
use strict;
use warnings;
use Test::More;

use IO::Async::Loop;
use IO::Socket::INET;
use Net::Async::HTTP;
use Net::Async::HTTP::Server;
use HTTP::Response;

package My::Request {
   use base qw( Net::Async::HTTP::Server::Request );
   sub tag { "mine" }
}

my $loop = IO::Async::Loop->new;
my @delayed;
my $server = Net::Async::HTTP::Server->new(
   request_class => "My::Request",
   on_request => sub {
      my ( $self, $req ) = @_;
      my $resp = HTTP::Response->new( 200 );
      $resp->content( join "|", $req->tag, $req->method, $req->path,
         $req->query_param( "a" ) // "-", $req->header( "X-Test" ) // "-", $req->body );
      if( $req->path eq "/slow" ) {
         push @delayed, [ $req, $resp ];   # answered after the next request
         return;
      }
      $req->respond( $resp );
      $_->[0]->respond( $_->[1] ) for splice @delayed;
   },
);
$loop->add( $server );
my $listener = $server->listen( host => "127.0.0.1", service => 0, socktype => "stream" )->get;
my $port = $listener->read_handle->sockport;

my $http = Net::Async::HTTP->new( max_connections_per_host => 1 );
$loop->add( $http );

my $r = $http->do_request( method => "POST", uri => "http://127.0.0.1:$port/a/b%20c?a=x%20y",
   content => "body1", content_type => "text/plain", headers => [ "X-Test" => "t" ] )->get;
is( $r->code, 200, "status" );
is( $r->content, "mine|POST|/a/b%20c|x y|t|body1", "request seen as sent" );
$r = $http->do_request( method => "GET", uri => "http://127.0.0.1:$port/again" )->get;
is( $r->content, "mine|GET|/again|-|-|", "second request on a kept-alive connection" );

# Raw socket: a chunked body, then two pipelined requests whose responses must
# come back in request order even though the first is answered last.
my $sock = IO::Socket::INET->new( PeerAddr => "127.0.0.1", PeerPort => $port ) or die $!;
$sock->print( "PUT /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" .
   "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" .
   "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" .
   "GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" );
my $all = "";
my $f = $loop->new_future;
my $stream = IO::Async::Stream->new( handle => $sock,
   on_read => sub { my ( undef, $buf, $eof ) = @_; $all .= $$buf; $$buf = ""; $f->done if $eof && !$f->is_ready; 0 } );
$loop->add( $stream );
$loop->await( Future->wait_any( $f, $loop->delay_future( after => 10 ) ) );
my @bodies = $all =~ m/\r\n\r\n(mine\|[^\n]*?)(?=HTTP\/1\.1|\z)/g;
is_deeply( \@bodies, [ "mine|PUT|/chunked|-|-|abcde", "mine|GET|/slow|-|-|", "mine|GET|/fast|-|-|" ],
   "chunked body decoded; pipelined responses in request order" );
like( $all, qr/Connection: close/, "Connection: close honoured" );

done_testing;
